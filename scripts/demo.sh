#!/usr/bin/env bash
# The demo of what shoal does today: validate the example repositories, then walk through a
# GitOps change in a throwaway Git repository and show what `shoal plan` says about each commit.
# (The live multi-node cluster joins this demo once the cluster exists; see README.md.)
set -euo pipefail
cd "$(dirname "$0")/.."
shoal="$PWD/bin/shoal"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }
# plan exits 2 when there are changes and 1 when HEAD is invalid: both are answers, not failures.
runplan() { printf '\033[2m$ shoal plan %s\033[0m\n' "$*"; "$shoal" plan "$@" || { rc=$?; [ $rc -le 2 ] || exit $rc; echo "(exit status $rc)"; }; }

command -v git >/dev/null || { echo "the demo needs git: apt-get install -y git"; exit 1; }

step "shoal $("$shoal" version | cut -d' ' -f2-)"

step "Validate the example repositories"
run "$shoal" validate examples/hello
run "$shoal" validate examples/shop

work=.demo/repo
rm -rf "$work" && mkdir -p "$work"
cp -r examples/hello/. "$work/"
cd "$work"
git init -q -b main
git -c user.name=demo -c user.email=demo@shoal.dev add -A
git -c user.name=demo -c user.email=demo@shoal.dev commit -qm "Deploy hello"
commit() { git -c user.name=demo -c user.email=demo@shoal.dev commit -qam "$1"; echo "committed: $1"; }

step "Scale to 5 replicas and roll out version 1.1, in one commit"
sed -i 's/replicas: 3/replicas: 5/; s#examples/web:1.0#examples/web:1.1#' web.yaml
commit "Scale hello to 5 and roll out web 1.1"
runplan HEAD~1 HEAD

step "The same plan as a pull-request comment"
runplan HEAD~1 HEAD -o markdown

step "A bad commit: a typo in a field name and an invalid port"
sed -i 's/containerPort: 8080/containerPortt: 8080/; s/port: 80$/port: 80000/' web.yaml
commit "Oops"
runplan HEAD~1 HEAD
echo "A cluster would refuse this commit as a whole and keep running the last good one."

step "Roll back with git revert"
git -c user.name=demo -c user.email=demo@shoal.dev revert --no-edit HEAD HEAD~1 >/dev/null
echo "reverted the last two commits"
runplan HEAD~3 HEAD
echo "And against the first deploy there is nothing left to change:"
runplan HEAD~4 HEAD

step "Done"
echo "The demo repository is in $work; try: bin/shoal plan --repo $work HEAD~1 HEAD"
