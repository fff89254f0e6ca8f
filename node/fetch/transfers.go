package fetch

import (
	"sort"
	"sync"
	"time"

	"github.com/allmende/allmende/node/api"
)

// Transfer is a fetch in progress, as the web page and API show it.
type Transfer struct {
	CID     string    `json:"cid"`
	Out     string    `json:"out"`
	Done    uint64    `json:"done"`
	Total   uint64    `json:"total"`
	Started time.Time `json:"started"`
}

// transferTable tracks fetches in progress. Its zero value is ready to use.
type transferTable struct {
	mu   sync.Mutex
	next uint64
	m    map[uint64]*Transfer
}

// track registers a transfer and returns a progress function that updates
// it (and calls inner) and a function that removes it.
func (t *transferTable) track(cid, out string, inner api.ProgressFunc) (api.ProgressFunc, func()) {
	t.mu.Lock()
	if t.m == nil {
		t.m = make(map[uint64]*Transfer)
	}
	t.next++
	id := t.next
	tr := &Transfer{CID: cid, Out: out, Started: time.Now()}
	t.m[id] = tr
	t.mu.Unlock()
	update := func(p api.Progress) {
		t.mu.Lock()
		tr.Done, tr.Total = p.Done, p.Total
		t.mu.Unlock()
		if inner != nil {
			inner(p)
		}
	}
	end := func() {
		t.mu.Lock()
		delete(t.m, id)
		t.mu.Unlock()
	}
	return update, end
}

// list returns copies of the transfers in progress, oldest first.
func (t *transferTable) list() []Transfer {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Transfer, 0, len(t.m))
	for _, tr := range t.m {
		out = append(out, *tr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out
}
