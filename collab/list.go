package collab

import (
	"cmp"
	"context"
	"fmt"
	"slices"
)

// ClusterLister is implemented by a Relay that knows the documents of
// every node (collab/redisrelay.Cluster keeps a list in Redis). Hub.List
// then lists the cluster's documents, not only those in this node's
// Store.
type ClusterLister interface {
	// List is Store.List over the whole cluster. An error wrapping
	// ErrUnavailable means the list cannot be read now.
	List(ctx context.Context, collection string, limit int) ([]DocInfo, error)
}

// list lists documents for Hub.List: the Store's, merged with the
// cluster's when the Relay is a ClusterLister. The Store's entries cover
// what the cluster's list may lack (documents written before the list
// existed, or whose entry a crash kept from being written); for a document
// in both, the entry at the higher version wins.
func (h *Hub) list(ctx context.Context, collection string, limit int) ([]DocInfo, error) {
	local, err := h.opts.Store.List(ctx, collection, limit)
	if err != nil {
		return nil, fmt.Errorf("collab: list %q: %w", collection, err)
	}
	cl, ok := h.opts.Relay.(ClusterLister)
	if !ok {
		return local, nil
	}
	remote, err := cl.List(ctx, collection, limit)
	if err != nil {
		return nil, fmt.Errorf("collab: list %q in the cluster: %w", collection, err)
	}
	return mergeLists(local, remote, limit), nil
}

// mergeLists merges two lists, each newest first, into one of at most
// limit entries (0 for all), one per document, newest first. Each list
// holds the newest entries of its source, so the first limit of the merge
// are the newest of both.
func mergeLists(a, b []DocInfo, limit int) []DocInfo {
	byKey := make(map[Key]int, len(a)+len(b))
	out := make([]DocInfo, 0, len(a)+len(b))
	for _, in := range slices.Concat(a, b) {
		if i, ok := byKey[in.Key]; ok {
			if in.Version > out[i].Version {
				out[i] = in
			}
			continue
		}
		byKey[in.Key] = len(out)
		out = append(out, in)
	}
	slices.SortStableFunc(out, func(x, y DocInfo) int {
		if c := cmp.Compare(y.Modified, x.Modified); c != 0 {
			return c
		}
		if c := cmp.Compare(x.Key.Collection, y.Key.Collection); c != 0 {
			return c
		}
		return cmp.Compare(x.Key.ID, y.Key.ID)
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}
