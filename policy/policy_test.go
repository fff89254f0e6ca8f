package policy_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/allmende/allmende/policy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRefusals(t *testing.T) {
	r := policy.NewRefusals()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(r); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 { // concurrent counting (run with -race)
		wg.Go(func() {
			for range 10 {
				r.Refused(policy.ReasonDenyCID, policy.SurfaceGateway)
			}
		})
	}
	wg.Wait()
	r.Refused(policy.ReasonLicense, policy.SurfaceFill)
	tests := []struct {
		why     string
		reason  policy.Reason
		surface policy.Surface
		want    uint64
	}{
		{"counted from eight goroutines", policy.ReasonDenyCID, policy.SurfaceGateway, 80},
		{"a licence refusal on a fill", policy.ReasonLicense, policy.SurfaceFill, 1},
		{"never refused: zero", policy.ReasonDenyName, policy.SurfaceHF, 0},
	}
	for _, tt := range tests {
		if got := r.Count(tt.reason, tt.surface); got != tt.want {
			t.Errorf("%s: Count = %d, want %d", tt.why, got, tt.want)
		}
	}
	// What /metrics shows: every reason on every surface, refused or not.
	var want strings.Builder
	want.WriteString("# HELP allmende_refusals_total Requests refused by a denylist or the licence policy, by reason and by where they were refused.\n")
	want.WriteString("# TYPE allmende_refusals_total counter\n")
	for _, reason := range policy.Reasons {
		for _, s := range policy.Surfaces {
			fmt.Fprintf(&want, "allmende_refusals_total{reason=%q,surface=%q} %d\n", reason, s, r.Count(reason, s))
		}
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want.String()), policy.MetricName); err != nil {
		t.Error(err)
	}
}
