package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lowrank/lowrank/train"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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

// TestFlagsDocumented: every flag of every command has a description, and
// a flag that sets a numeric or boolean configuration field shows that type
// in --help (not "string").
func TestFlagsDocumented(t *testing.T) {
	kinds := map[string]string{}
	ct := reflect.TypeFor[train.Config]()
	for i := 0; i < ct.NumField(); i++ {
		key := strings.Split(ct.Field(i).Tag.Get("json"), ",")[0]
		kinds[strings.ReplaceAll(key, "_", "-")] = map[reflect.Kind]string{reflect.Int: "int", reflect.Float64: "float", reflect.Bool: "bool", reflect.Uint64: "uint", reflect.String: "string"}[ct.Field(i).Type.Kind()]
	}
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			n++
			if strings.TrimSpace(f.Usage) == "" {
				t.Errorf("%s --%s has no description", c.CommandPath(), f.Name)
			}
			if c.Name() == "train" || c.Name() == "eval" {
				if want, ok := kinds[f.Name]; ok && f.Value.Type() != want && !(want == "float" && f.Value.Type() == "float64") {
					t.Errorf("%s --%s shows type %s, the field is %s", c.CommandPath(), f.Name, f.Value.Type(), want)
				}
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot())
	if n < 100 {
		t.Errorf("only %d flags seen", n)
	}
}
