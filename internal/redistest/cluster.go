package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster of three masters and no replicas, each a
// Server started by StartCluster.
type Cluster struct {
	// Servers are the masters, in the order their slots were assigned.
	Servers []*Server
}

// StartCluster starts three redis-server processes with cluster mode on
// (cluster bus on a second free port each), joins them with
// `redis-cli --cluster create`, and waits until every node reports
// cluster_state:ok. A cleanup stops them.
func StartCluster(t testing.TB, opts ServerOptions) *Cluster {
	t.Helper()
	cli := Binary(t, "redis-cli")
	c := &Cluster{}
	for range 3 {
		bus, err := freePort()
		if err != nil {
			t.Fatalf("redistest: free port: %v", err)
		}
		o := opts
		o.Args = append([]string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000",
			"--cluster-port", strconv.Itoa(bus),
		}, opts.Args...)
		c.Servers = append(c.Servers, StartServer(t, o))
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), startLimit)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	deadline := time.Now().Add(startLimit)
	for _, s := range c.Servers {
		for {
			info, err := command(s.Addr(), "CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: cluster node %s not ok after %v: %v\n%s", s.Addr(), startLimit, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// Addrs returns the masters' host:port addresses, the seeds a cluster
// client needs.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		addrs[i] = s.Addr()
	}
	return addrs
}

// command runs one command over a fresh connection and returns a bulk
// string or status reply (enough for CLUSTER INFO).
func command(addr string, args ...string) (string, error) {
	c, err := dial(addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	return readReply(c)
}
