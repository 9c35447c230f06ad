package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestJSONEmptyLists: every JSON output writes [] for a list without
// items, never null, however deep the list sits.
func TestJSONEmptyLists(t *testing.T) {
	type inner struct {
		IDs  []int32 `json:"ids"`
		Skip []int   `json:"skip,omitempty"`
		When time.Time
		priv []int
	}
	type outer struct {
		Name  string            `json:"name"`
		In    *inner            `json:"in"`
		Many  []inner           `json:"many"`
		ByKey map[string][]int  `json:"by_key"`
		Any   map[string]any    `json:"any"`
		Nil   *inner            `json:"nil"`
		Raw   []byte            `json:"raw"`
		Strs  map[string]string `json:"strs"`
	}
	v := outer{In: &inner{priv: []int{1}}, Many: []inner{{}}, ByKey: map[string][]int{"a": nil}, Any: map[string]any{"x": []string(nil), "y": inner{}}}
	var b bytes.Buffer
	if err := writeJSON(&b, v); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	if strings.Count(got, "[]") != 5 || strings.Contains(got, `"skip"`) {
		t.Errorf("want 5 empty lists and no omitted one:\n%s", got)
	}
	for _, want := range []string{`"nil": null`, `"raw": null`, `"strs": null`, `"When": "0001-01-01T00:00:00Z"`} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s:\n%s", want, got)
		}
	}
	if v.In.IDs != nil || v.In.priv == nil {
		t.Error("the value written was changed")
	}
	dir := t.TempDir()
	writeTinyHF(t, dir, "qwen2")
	code, out, errOut := capture(t, "tokenize", "--model", dir, "--json", "--no-special", "")
	if code != 0 || !strings.Contains(out, `"ids": []`) || strings.Contains(out, "null") {
		t.Errorf("tokenize --json of an empty text: exit %d %s\n%s", code, errOut, out)
	}
}
