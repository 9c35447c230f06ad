package augment

import (
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/data"
)

func chatRow() data.Row {
	return data.Row{"messages": []any{
		map[string]any{"role": "system", "content": "You answer in SQL only."},
		map[string]any{"role": "user", "content": "how many rows does the table of players have today"},
		map[string]any{"role": "assistant", "content": "SELECT COUNT(*) FROM players"}}}
}

// TestTextVary: variants are a pure function of (seed, epoch, index), never
// modify the row, edit prompt fields only unless All, and keep the answer.
func TestTextVary(t *testing.T) {
	tx := &Text{Seed: 4, WordSwap: 0.3, WordDelete: 0.2, CharNoise: 0.1}
	r := chatRow()
	orig := chatRow()
	a, b, c := tx.Vary(2, 7, r), tx.Vary(2, 7, r), tx.Vary(3, 7, r)
	if !reflect.DeepEqual(a, b) || reflect.DeepEqual(a, c) {
		t.Fatal("variants are not a function of (seed, epoch, index)")
	}
	if !reflect.DeepEqual(r, orig) {
		t.Fatal("Vary modified its row")
	}
	msg := func(row data.Row, i int) string {
		return row["messages"].([]any)[i].(map[string]any)["content"].(string)
	}
	if msg(a, 2) != msg(r, 2) || msg(a, 1) == msg(r, 1) {
		t.Errorf("answer %q, user %q", msg(a, 2), msg(a, 1))
	}
	everything, _ := ParseFields("all")
	all := (&Text{Seed: 4, WordSwap: 0.5, Fields: everything}).Vary(0, 1, r)
	if msg(all, 2) == msg(r, 2) {
		t.Error("all fields left the answer alone")
	}
	userOnly, err := ParseFields("user")
	if err != nil {
		t.Fatal(err)
	}
	u := (&Text{Seed: 4, WordSwap: 0.5, WordDelete: 0.3, Fields: userOnly}).Vary(0, 1, r)
	if msg(u, 0) != msg(r, 0) || msg(u, 2) != msg(r, 2) || msg(u, 1) == msg(r, 1) {
		t.Errorf("user only: %v", u["messages"])
	}
	if _, err := ParseFields("user,answer"); err == nil {
		t.Error("an unknown field accepted")
	}
	pc := (&Text{Seed: 1, WordDelete: 0.5}).Vary(0, 0, data.Row{"prompt": "a b c d e f g h", "completion": " SELECT x"})
	if pc["completion"] != " SELECT x" || pc["prompt"] == "a b c d e f g h" {
		t.Errorf("prompt/completion: %v", pc)
	}
}

// TestTextRates: word deletion and character noise act at their rates
// (within 4 standard deviations), swaps keep every word, whitespace stays.
func TestTextRates(t *testing.T) {
	words := strings.Fields(strings.Repeat("alpha beta gamma delta epsilon ", 40))
	s := strings.Join(words, " ")
	n := len(words)
	const p = 0.15
	deleted := 0
	for idx := range 100 {
		out := (&Text{Seed: 9, WordDelete: p}).edit(newRand(idx), s)
		deleted += n - len(strings.Fields(out))
		if strings.Contains(out, "  ") || strings.HasPrefix(out, " ") {
			t.Fatalf("deletion left doubled or leading spaces: %q", out[:40])
		}
	}
	check := func(what string, got, trials int, p float64) {
		sd := math.Sqrt(float64(trials) * p * (1 - p))
		if math.Abs(float64(got)-float64(trials)*p) > 4*sd {
			t.Errorf("%s: %d of %d, want %.0f ± %.0f", what, got, trials, float64(trials)*p, 4*sd)
		}
	}
	check("deleted words", deleted, 100*n, p)
	swapped := (&Text{Seed: 9, WordSwap: 0.5}).edit(newRand(1), s)
	if got := strings.Fields(swapped); len(got) != n || swapped == s {
		t.Errorf("swap changed the word count or nothing: %d words", len(got))
	}
	// Character noise: count the letters of a long word that changed.
	letters := strings.Repeat("abcdefghij", 100)
	changed := 0
	for idx := range 50 {
		out := (&Text{Seed: 3, CharNoise: 0.05}).edit(newRand(idx), letters+" 12 ,")
		if !strings.HasSuffix(out, " ,") {
			t.Fatalf("punctuation or spacing changed: %q", out[len(out)-5:])
		}
		if out != letters+" 12 ," {
			changed++
		}
	}
	if changed < 45 {
		t.Errorf("character noise changed %d of 50 long words", changed)
	}
}

func newRand(idx int) *rand.Rand { return rand.New(rand.NewPCG(textKey, uint64(uint32(idx)))) }

// TestTemplate: each variant samples a paraphrase, as the chat row's system
// message (replacing one, or added first) or the Alpaca row's preamble;
// the same for the same (seed, epoch, index); the row is not modified.
func TestTemplate(t *testing.T) {
	tp := &Template{Seed: 2, Prompts: []string{"Be kind.", "Be brief.", "Be exact."}}
	r := chatRow()
	seen := map[string]bool{}
	for e := range 30 {
		v := tp.Vary(e, 4, r)
		msgs := v["messages"].([]any)
		sys := msgs[0].(map[string]any)
		if len(msgs) != 3 || sys["role"] != "system" || !slices.Contains(tp.Prompts, sys["content"].(string)) {
			t.Fatalf("variant %d: %v", e, msgs[0])
		}
		seen[sys["content"].(string)] = true
		if !reflect.DeepEqual(v, tp.Vary(e, 4, r)) {
			t.Fatal("not a function of (seed, epoch, index)")
		}
	}
	if len(seen) != 3 || !reflect.DeepEqual(r, chatRow()) {
		t.Errorf("paraphrases drawn %v; row modified %v", seen, !reflect.DeepEqual(r, chatRow()))
	}
	noSystem := data.Row{"messages": []any{map[string]any{"role": "user", "content": "hi"}, map[string]any{"role": "assistant", "content": "yo"}}}
	if msgs := tp.Vary(0, 0, noSystem)["messages"].([]any); len(msgs) != 3 || msgs[0].(map[string]any)["role"] != "system" {
		t.Errorf("no system message added: %v", msgs)
	}
	alpaca := tp.Vary(1, 1, data.Row{"instruction": "Add.", "output": "2"})
	if p, _ := alpaca[data.PreambleKey].(string); !slices.Contains(tp.Prompts, p) {
		t.Errorf("alpaca preamble %q", p)
	}
	if Vary(nil, nil) != nil || Vary(tp.Vary) == nil {
		t.Error("Vary of nothing, or of one")
	}
}
