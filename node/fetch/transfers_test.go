package fetch

import (
	"testing"

	"github.com/allmende/allmende/node/api"
)

func TestTransferTable(t *testing.T) {
	var tt transferTable
	var seen api.Progress
	update, end := tt.track("bafyA", "/tmp/a", func(p api.Progress) { seen = p })
	_, end2 := tt.track("bafyB", "/tmp/b", nil)
	update(api.Progress{Done: 5, Total: 10})
	if seen != (api.Progress{Done: 5, Total: 10}) {
		t.Errorf("inner progress got %+v", seen)
	}
	list := tt.list()
	if len(list) != 2 || list[0].CID != "bafyA" || list[0].Done != 5 || list[1].CID != "bafyB" {
		t.Fatalf("list = %+v", list)
	}
	end()
	end2()
	if n := len(tt.list()); n != 0 {
		t.Errorf("%d transfers left after both ended", n)
	}
}
