// Package nodetest finds Node and the repository's npm packages for the
// Go tests that check coedit against JavaScript references (the
// ot-text-unicode type, yjs, Hocuspocus). scripts/test.sh installs them
// (npm ci); a test that needs them fails without them, it never skips.
package nodetest

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Node returns the node binary, failing t unless node is on PATH and
// each of pkgs is installed in the repository's node_modules.
func Node(t testing.TB, pkgs ...string) string {
	t.Helper()
	root := repoRoot(t)
	for _, pkg := range pkgs {
		if _, err := os.Stat(filepath.Join(root, "node_modules", pkg, "package.json")); err != nil {
			t.Fatalf("the npm package %s is not installed (%v): run `npm ci` in the repository root", pkg, err)
		}
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed: %v", err)
	}
	return node
}

// Start starts node with args (a script and its arguments) and returns
// the running command, its stdout to read, and the buffer its stderr goes
// to, for the caller's failure messages. The caller waits for it, or
// kills it.
func Start(t testing.TB, node string, args ...string) (*exec.Cmd, io.ReadCloser, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(node, args...)
	stderr := new(bytes.Buffer)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	return cmd, out, stderr
}

// repoRoot is the nearest directory above the test's working directory
// (its package's) that holds a go.mod: the module's root.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
