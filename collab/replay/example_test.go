package replay_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/replay"
	"github.com/coedit/coedit/editlog"
	"github.com/coedit/coedit/storage"
)

// Run without a testing.TB: a hub over a store the caller opens, and
// an edit log in which two clients insert at the same place from the same
// version. The later-committed insert lands left, as in ShareDB.
func ExampleRun() {
	dir, err := os.MkdirTemp("", "replay-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := storage.Open(filepath.Join(dir, "coedit.db"), storage.Options{Sync: storage.SyncNone})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	hub := collab.NewHub(collab.Options{Store: db})
	defer hub.Close(context.Background())

	l, err := editlog.Read(strings.NewReader(`{"editlog":1,"collection":"notes","id":"x","initial":"hello","final":"BAhello"}
{"src":"a","seq":1,"v":1,"op":["A"]}
{"src":"b","seq":1,"v":1,"op":["B"]}
{"src":"a","seq":1,"v":1,"op":["A"]}
`))
	if err != nil {
		log.Fatal(err)
	}
	res, err := replay.Run(context.Background(), hub, l)
	if err != nil {
		log.Fatal(err) // a *MismatchError would show where the text differs
	}
	fmt.Printf("%s at version %d: %q, %d resend acknowledged\n", res.Key, res.Final.Version, res.Final.Data, res.Duplicates)
	// Output: notes/x at version 3: "BAhello", 1 resend acknowledged
}
