// Command report turns the results of scripts/bench.sh (one `coedit bench
// --out` JSON file per run) into docs/performance.md, with tables per
// scenario, the targets checked against what was measured, and PNG
// plots of latency against offered load.
//
//	cd bench/report && go run . -results DIR -out ../../docs/performance.md -plots ../../docs/perf
//
// It is its own Go module so that the plotting library (gonum.org/v1/plot)
// and its dependencies stay out of the server's go.mod.
//
// Result files are named SCENARIO.TARGET.json, or SCENARIO.TARGET.RATE.json
// for the steps of scenario s3; TARGET is coedit, sharedb, hocuspocus, relay,
// coedit-sync-none, or cluster (scenario 7's two nodes over Redis). A
// scenario run in rounds has SCENARIO.TARGET@ROUND.json, one per round
// (rounds.go).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/coedit/coedit/bench/loadgen"
)

// run is one result file, or the rounds of one scenario and target.
type run struct {
	scenario, target string
	rate             float64 // s3 steps only
	// res is the run's result; for rounds, their medians (mergeRounds).
	res loadgen.Result
	// rounds are the rounds' results, in round order; none for a
	// scenario run once.
	rounds   []loadgen.Result
	roundNos []int
}

// results holds every run, by scenario and target.
type results struct {
	one   map[string]map[string]*run // scenario → target → run
	steps map[string][]*run          // s3: target → runs by rate
}

func (r *results) get(scenario, target string) *loadgen.Result {
	if x := r.one[scenario][target]; x != nil {
		return &x.res
	}
	return nil
}

// targets are the servers compared, in the order of every table.
var targets = []string{"coedit", "sharedb", "hocuspocus", "relay"}

var targetNames = map[string]string{
	"coedit":           "coedit (`--sync always`)",
	"coedit-sync-none": "coedit (`--sync none`)",
	"sharedb":          "ShareDB 7 (in memory)",
	"sharedb-pg":       "ShareDB 7 on PostgreSQL (durable)",
	"hocuspocus":       "Hocuspocus 3 (in memory)",
	"relay":            "bare relay (ceiling)",
}

func main() {
	dir := flag.String("results", "", "directory of result files (required)")
	out := flag.String("out", "docs/performance.md", "page to write")
	plots := flag.String("plots", "docs/perf", "directory for the PNG plots")
	var m meta
	flag.StringVar(&m.LoadStart, "load-start", "", "load average when the run started")
	flag.StringVar(&m.LoadEnd, "load-end", "", "load average when it ended")
	flag.StringVar(&m.Elapsed, "elapsed", "", "how long the script ran")
	flag.StringVar(&m.Note, "note", "", "a remark for the top of the page (for example, that the machine was shared)")
	flag.StringVar(&m.PostgreSQL, "postgresql", "", "the PostgreSQL server ShareDB on PostgreSQL ran against, if it ran: its version and durability settings, as bench.sh reads them")
	flag.StringVar(&m.Params, "params", "", "the script's run parameters, as shown on the page")
	flag.StringVar(&m.Date, "date", "", "when the results were measured (default: now), to render a saved run again")
	flag.StringVar(&m.Commit, "commit", "", "the commit the results were measured at (default: HEAD), to render a saved run again")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "report: -results is required")
		os.Exit(2)
	}
	if err := generate(*dir, *out, *plots, m); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func generate(dir, out, plotDir string, m meta) error {
	rs, err := load(dir)
	if err != nil {
		return err
	}
	m.fill()
	if err := os.MkdirAll(plotDir, 0o755); err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(out), plotDir)
	if err != nil {
		rel = plotDir
	}
	images, err := plotSteps(rs, plotDir, rel)
	if err != nil {
		return err
	}
	clusterImages, err := plotCluster(rs, plotDir, rel)
	if err != nil {
		return err
	}
	page := render(rs, m, images, clusterImages)
	return os.WriteFile(out, []byte(page), 0o644)
}

// load reads every result file in dir.
func load(dir string) (*results, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	rs := &results{one: map[string]map[string]*run{}, steps: map[string][]*run{}}
	for _, f := range files {
		parts := strings.Split(strings.TrimSuffix(filepath.Base(f), ".json"), ".")
		if len(parts) < 2 || len(parts) > 3 {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		x := &run{scenario: parts[0], target: parts[1]}
		if err := json.Unmarshal(b, &x.res); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if target, no, ok := strings.Cut(x.target, "@"); ok {
			if target == "" {
				return nil, fmt.Errorf("%s: no target before the round", f)
			}
			if len(parts) != 2 {
				return nil, fmt.Errorf("%s: a step of scenario 3 has no rounds", f)
			}
			n, err := strconv.Atoi(no)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("%s: round %q is not a positive number", f, no)
			}
			if rs.one[x.scenario] == nil {
				rs.one[x.scenario] = map[string]*run{}
			}
			r := rs.one[x.scenario][target]
			if r == nil {
				r = &run{scenario: x.scenario, target: target}
				rs.one[x.scenario][target] = r
			} else if len(r.rounds) == 0 {
				return nil, fmt.Errorf("%s: %s.%s has a file without a round too", f, x.scenario, target)
			}
			i, _ := slices.BinarySearch(r.roundNos, n)
			r.roundNos = slices.Insert(r.roundNos, i, n)
			r.rounds = slices.Insert(r.rounds, i, x.res)
			continue
		}
		if len(parts) == 3 {
			if x.rate, err = strconv.ParseFloat(parts[2], 64); err != nil {
				return nil, fmt.Errorf("%s: step rate %q: %w", f, parts[2], err)
			}
			rs.steps[x.target] = append(rs.steps[x.target], x)
			continue
		}
		if rs.one[x.scenario] == nil {
			rs.one[x.scenario] = map[string]*run{}
		}
		if rs.one[x.scenario][x.target] != nil {
			return nil, fmt.Errorf("%s: %s.%s has rounds too", f, x.scenario, x.target)
		}
		rs.one[x.scenario][x.target] = x
	}
	for _, byTarget := range rs.one {
		for _, x := range byTarget {
			if len(x.rounds) > 0 {
				x.res = mergeRounds(x.rounds)
			}
		}
	}
	for _, s := range rs.steps {
		sort.Slice(s, func(i, j int) bool { return s[i].rate < s[j].rate })
	}
	if len(rs.one) == 0 && len(rs.steps) == 0 {
		return nil, fmt.Errorf("no result files in %s", dir)
	}
	return rs, nil
}

// held reports whether a step kept up with its offered load: at least 95%
// of it acknowledged with ack p99 at most 50 ms.
func held(r *loadgen.Result) bool {
	return r.OpsPerSec >= 0.95*r.OfferedOps && r.Ack.P99 <= 50 && r.Unsent == 0 && len(r.Errors) == 0
}

// highestHeld returns the highest offered load target held in s3, or 0.
func (rs *results) highestHeld(target string) float64 {
	best := 0.0
	for _, x := range rs.steps[target] {
		if held(&x.res) {
			best = max(best, x.rate)
		}
	}
	return best
}
