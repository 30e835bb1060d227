package main

import (
	"github.com/coedit/coedit/internal/statmetrics"
	"github.com/coedit/coedit/storage"
)

// newStoreCollector reports a storage.DB's counters on /metrics, read at
// scrape time. web serves the registry; the store is known only here.
func newStoreCollector(db *storage.DB) *statmetrics.Collector[storage.Stats] {
	c := statmetrics.New(db.Stats)
	c.Counter("coedit_store_commits_total", "Commit, SaveSnapshot and Truncate calls the store wrote in group commits.",
		func(st storage.Stats) uint64 { return st.Commits })
	c.Counter("coedit_store_write_batches_total", "Write transactions the store ran (with --sync always, one fsync each); commits divided by this is the group commit size.",
		func(st storage.Stats) uint64 { return st.Batches })
	c.Counter("coedit_store_company_waits_total", "Group commits whose leader waited (up to --commit-wait) for a call for another document to share its sync.",
		func(st storage.Stats) uint64 { return st.CompanyWaits })
	c.Counter("coedit_store_applies_total", "bbolt write transactions that moved logged ops from the op log into the bbolt file.",
		func(st storage.Stats) uint64 { return st.Applies })
	c.Gauge("coedit_store_pending_documents", "Documents with logged ops not yet in the bbolt file (served from memory meanwhile).",
		func(st storage.Stats) float64 { return float64(st.PendingDocs) })
	c.Gauge("coedit_store_unapplied_bytes", "Bytes of op log frames kept until the bbolt file holds their ops; at 8 MiB everything is applied.",
		func(st storage.Stats) float64 { return float64(st.UnappliedBytes) })
	return c
}
