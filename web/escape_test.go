package web

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// handle parses each frame into a request on its own stack (a 520-byte
// request on the heap for every frame was 11.5% of what the server
// allocated in a closed loop). Nothing fails when a change makes it
// escape (a reply function that captures it, a handler called through
// a function value), so this asks the compiler: its escape analysis
// (-gcflags=-m) must not report handle's request as moved to the heap.
func TestHandleRequestStaysOnStack(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the compiler")
	}
	line := declLine(t, "dispatch.go", "func (c *conn) handle(", "\tvar r request")
	out, err := exec.Command("go", "build", "-gcflags=-m", "-o", os.DevNull, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build -gcflags=-m: %v\n%s", err, out)
	}
	moved := regexp.MustCompile(fmt.Sprintf(`(?m)^\./dispatch\.go:%d:\d+: moved to heap: r$`, line))
	if m := moved.Find(out); m != nil {
		t.Fatalf("handle's request escapes to the heap (%s): a reply function or a call through a function value captures it; keep a copy (request.keep) or the frame instead", m)
	}
	if !strings.Contains(string(out), "./dispatch.go:") {
		t.Fatalf("the compiler's -m output names nothing in dispatch.go; the check would pass on anything:\n%.2000s", out)
	}
}

// declLine returns the line of decl, the first line that starts with it
// after the line that starts with fn, in file.
func declLine(t *testing.T, file, fn, decl string) int {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for n := 1; sc.Scan(); n++ {
		switch {
		case strings.HasPrefix(sc.Text(), fn):
			in = true
		case in && strings.HasPrefix(sc.Text(), decl):
			return n
		case in && sc.Text() == "}":
			t.Fatalf("%s: no %q in %s", file, decl, fn)
		}
	}
	t.Fatalf("%s: no %q", file, fn)
	return 0
}
