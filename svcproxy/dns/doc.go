// Package dns is shoal's cluster DNS: every agent answers
// svc.ns.svc.<domain> (A and SRV), headless Services with their ready pod
// IPs, StatefulSet pods as pod.svc.ns.svc.<domain>, and forwards every
// other name to the node's upstream resolvers.
//
// The agent builds a Server with NewServer, runs Serve on an address every
// pod on the node can reach, and calls Update with the same Services it
// gives svcproxy whenever they change. Records are rebuilt as a whole on
// each Update (a pure function of the Services) and swapped in atomically.
// Pods point at it with PodResolvConf.
package dns
