// Package membership is the gossip layer of a lookalike cluster: who is in
// it, how to reach each node and whether it is alive. It runs
// hashicorp/memberlist (SWIM with Lifeguard) and carries, per node, only
// liveness and addresses: node id, HTTP address, Raft address and a few
// flags, encoded by EncodeMeta in at most memberlist.MetaMaxSize (512)
// bytes (docs/format/gossip.md). Everything else the cluster agrees on
// (collections, shard maps, the node table) lives in Raft (package
// coordinator); gossip never decides placement.
//
// A Membership starts with Start and ends with Close; it owns two
// goroutines: memberlist's own and the join loop, which retries the
// configured seeds until one answers or Close. Members may be called from
// any goroutine. Options.OnChange is called from memberlist's goroutines
// and must not block.
package membership
