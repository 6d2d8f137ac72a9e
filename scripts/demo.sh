#!/usr/bin/env bash
# The shoal demo: a live three-node cluster on this machine (shoal up), deployed, scaled, rolled
# and rolled back by Git commits, with the Service answering through a NodePort and a ClusterIP
# at every step. It installs the Debian packages it needs and leaves the cluster running.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
shoal="$root/bin/shoal"
dir=${SHOAL_DEMO_DIR:-/var/lib/shoal-up}

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '%s\n' "$*"; }
run() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }
# plan exits 2 when there are changes and 1 when HEAD is invalid: both are answers, not failures.
runplan() { printf '\033[2m$ shoal plan %s\033[0m\n' "$*"; "$shoal" plan "$@" || { rc=$?; [ $rc -le 2 ] || exit $rc; }; }

# until DESC SECONDS CMD...: run CMD every half second until it succeeds.
until_ok() {
	local desc=$1 secs=$2; shift 2
	local end=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		if [ $SECONDS -ge $end ]; then
			say "gave up after ${secs}s waiting for: $desc"
			say "agent logs: $dir/node*/agent.log"
			exit 1
		fi
		sleep 0.5
	done
	say "ok: $desc"
}

[ "$(id -u)" = 0 ] || { say "the demo creates network namespaces and containers: run it as root"; exit 1; }

bold "Packages"
missing=()
for pair in containerd:containerd runc:runc iptables:iptables ip:iproute2 nsenter:util-linux curl:curl git:git; do
	command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
[ -e /usr/lib/cni/bridge ] || [ -e /opt/cni/bin/bridge ] || missing+=(containernetworking-plugins)
if [ ${#missing[@]} -gt 0 ]; then
	run apt-get update -qq
	run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
	say "containerd, runc, iptables, CNI plugins, iproute2, curl and git are installed"
fi

bold "Images: tiny Go programs built into OCI tarballs (no registry needed)"
run go run ./examples/images/build -o dist/images >/dev/null
ls dist/images

bold "Start a three-node cluster following a repository made from examples/hello"
"$shoal" down --dir "$dir" >/dev/null
run "$shoal" up --dir "$dir" --repo examples/hello --nodes 3 \
	--image dist/images/web-1.0.tar --image dist/images/web-1.1.tar
export SHOAL_SERVER SHOAL_CLUSTER_KEY_FILE
SHOAL_SERVER=$(sed -n 's/.*"statusAddr": "\(.*\)".*/\1/p' "$dir/cluster.json" | head -1)
SHOAL_CLUSTER_KEY_FILE=$dir/cluster.key
node1=$(sed -n 's/.*"addr": "\(.*\)".*/\1/p' "$dir/cluster.json" | head -1)
node3=$(sed -n 's/.*"addr": "\(.*\)".*/\1/p' "$dir/cluster.json" | tail -1)
netns=$(sed -n 's/.*"netns": "\(.*\)".*/\1/p' "$dir/cluster.json" | sed -n 2p)
repo=$dir/repo
nodeport=http://$node1:30080/

run "$shoal" get nodes
run "$shoal" get pods -n hello -o wide

# ask N: N requests through the NodePort of node1 and N through the ClusterIP from node2.
clusterip=$("$shoal" get services -n hello -o json | sed -n 's/.*"clusterIP": "\([0-9.]*\)".*/\1/p' | head -1)
ask() {
	say "through the NodePort ($nodeport):"
	for _ in $(seq "$1"); do curl -sS -m 2 "$nodeport" || say "(failed)"; done
	say "through the ClusterIP, from node2 ($clusterip:80):"
	for _ in $(seq "$1"); do nsenter --net="/run/netns/$netns" curl -sS -m 2 "http://$clusterip/" || say "(failed)"; done
}
bold "The Service answers from every node"
ask 4

git_() { git -C "$repo" -c user.name=demo -c user.email=demo@shoal.dev "$@"; }
ready_pods() { # ready_pods N: exactly N pods of hello, all 1/1 Running
	local out; out=$("$shoal" get pods -n hello --no-headers 2>/dev/null) || return 1
	[ "$(grep -c . <<<"$out")" = "$1" ] && [ "$(grep -c ' 1/1 *Running' <<<"$out")" = "$1" ]
}
all_say() { # all_say TEXT: 12 answers in a row contain TEXT
	for _ in $(seq 12); do curl -sS -m 2 "$nodeport" | grep -q "$1" || return 1; done
}

bold "Scale to 5 replicas: review the change, then commit"
sed -i 's/replicas: 3/replicas: 5/' "$repo/web.yaml"
git_ commit -qam "Scale web to 5"
(cd "$repo" && runplan HEAD~1 HEAD)
until_ok "5 replicas ready" 120 ready_pods 5
run "$shoal" get pods -n hello -o wide

bold "A rolling update by a commit (image 1.1, message \"version 2\"), under steady load"
sed -i 's#examples/web:1.0#examples/web:1.1#; s/"version 1"/"version 2"/' "$repo/web.yaml"
git_ commit -qam "Roll out web 1.1"
(cd "$repo" && runplan HEAD~1 HEAD)
load=$(mktemp)
(
	ok=0 failed=0
	trap 'echo "$ok $failed" >"$load"; exit 0' TERM
	while :; do
		if curl -sf -m 2 "$nodeport" >/dev/null; then ok=$((ok + 1)); else failed=$((failed + 1)); fi
		sleep 0.05
	done
) &
loader=$!
until_ok "every answer says version 2" 180 all_say "version 2"
until_ok "5 replicas ready" 120 ready_pods 5
kill -TERM $loader && wait $loader || true
read -r ok failed <"$load"; rm -f "$load"
say "during the rollout: $ok requests answered, $failed failed"
ask 2

bold "A bad commit: a typo in a field name. The cluster refuses it and keeps serving"
sed -i 's/containerPort: 8080/containerPortt: 8080/' "$repo/web.yaml"
git_ commit -qam "Oops"
(cd "$repo" && runplan HEAD~1 HEAD)
bad=$(git_ rev-parse --short=12 HEAD)
until_ok "commit $bad refused" 60 sh -c "'$shoal' status | grep -q '$bad.*ago:'"
run "$shoal" status
ask 2

bold "Roll back with git revert: the typo, then the rollout"
git_ revert --no-edit HEAD HEAD~1 >/dev/null
run git -C "$repo" log --oneline
until_ok "every answer says version 1 again" 180 all_say "version 1"
until_ok "5 replicas ready" 120 ready_pods 5
ask 2

bold "The cluster keeps running"
say "Look around:   export SHOAL_SERVER=$SHOAL_SERVER SHOAL_CLUSTER_KEY_FILE=$SHOAL_CLUSTER_KEY_FILE"
say "               $shoal status; $shoal get pods -A -o wide; $shoal get services -A"
say "               curl $nodeport    (any node: http://$node3:30080/)"
say "Deploy:        edit and commit in $repo (try: cd $repo && $shoal plan HEAD~1 HEAD)"
say "Inside a node: nsenter --net=/run/netns/$netns curl http://$clusterip/"
say "Logs:          $dir/node*/agent.log"
say "Stop:          $shoal down --dir $dir"
