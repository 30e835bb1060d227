package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// meta describes the machine and the run, for the top of the page.
type meta struct {
	Date, Commit, CPU, Kernel, GoVersion, Node, ShareDB, Hocuspocus, Yjs string
	SharedbPostgres, PostgreSQL                                          string
	Cores                                                                int
	LoadStart, LoadEnd, Elapsed, Note, Params                            string
}

// fill finds what it can about the machine and the tree; a date or
// commit already set (the -date and -commit flags) stays.
func (m *meta) fill() {
	if m.Date == "" {
		m.Date = time.Now().UTC().Format("2006-01-02 15:04 UTC")
	}
	m.Cores = runtime.NumCPU()
	m.GoVersion = runtime.Version()
	if m.Commit == "" {
		m.Commit = command("git", "rev-parse", "--short", "HEAD")
		if command("git", "status", "--porcelain", "--untracked-files=no") != "" {
			m.Commit += " (with uncommitted changes)"
		}
	}
	m.Node = command("node", "--version")
	m.Kernel = command("uname", "-sr")
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	m.ShareDB = npmVersion("sharedb")
	m.Hocuspocus = npmVersion("@hocuspocus/server")
	m.Yjs = npmVersion("yjs")
	m.SharedbPostgres = npmVersion("sharedb-postgres")
}

// npmVersion is the version of the repository's installed npm package
// pkg, or "".
func npmVersion(pkg string) string {
	b, err := os.ReadFile("../../node_modules/" + pkg + "/package.json")
	if err != nil {
		return ""
	}
	var p struct{ Version string }
	if json.Unmarshal(b, &p) != nil {
		return ""
	}
	return p.Version
}

// command runs a command and returns its trimmed output, or "" on failure.
func command(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
