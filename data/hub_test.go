package data

import (
	"testing"

	"github.com/lowrank/lowrank/internal/hfcache"
	"github.com/lowrank/lowrank/internal/hfcache/hubtest"
)

// TestHubSplitsAskOnce: finding a hub dataset's splits (the train split,
// then each validation name in turn, as loading and validation do) asks
// the hub once, not once per split name probed; a dataset without a
// validation split says so without more requests.
func TestHubSplitsAskOnce(t *testing.T) {
	t.Setenv("HF_HUB_OFFLINE", "")
	t.Setenv("HF_HUB_CACHE", t.TempDir())
	f := hubtest.New(t)
	f.Repos["datasets/org/tt"] = map[string][]byte{"data/train-00000-of-00001.parquet": []byte("PAR1 t"), "data/test-00000-of-00001.parquet": []byte("PAR1 x")}
	f.Repos["datasets/org/tv"] = map[string][]byte{"data/train-00000-of-00001.parquet": []byte("PAR1 t"), "data/validation-00000-of-00001.parquet": []byte("PAR1 v")}
	hfcache.Hub = func() *hfcache.Client {
		c := hfcache.NewClient()
		c.Endpoint, c.Token = f.Server.URL, ""
		return c
	}
	t.Cleanup(func() { hfcache.Hub = nil })
	for ref, want := range map[string]string{"hf://datasets/org/tt": "", "hf://datasets/org/tv": "validation"} {
		before := f.APICalls.Load()
		if !HasSplit(ref, "train") {
			t.Errorf("%s: no train split", ref)
		}
		for range 2 {
			if got := ValidationSplit(ref); got != want {
				t.Errorf("%s: validation split %q, want %q", ref, got, want)
			}
		}
		if n := f.APICalls.Load() - before; n != 1 {
			t.Errorf("%s: %d requests to the hub's API, want 1", ref, n)
		}
	}
}
