package checkpoints

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/internal/testassets"
	"github.com/lowrank/lowrank/kernels"
	"github.com/lowrank/lowrank/lora"
	"github.com/lowrank/lowrank/model"
)

func tinyModel(t *testing.T, hidden int) *model.Model {
	m, err := model.NewRandom(model.Config{Arch: "llama", Hidden: hidden, Intermediate: 48, Layers: 2, Heads: 4, KVHeads: 2,
		HeadDim: hidden / 4, Vocab: 50, MaxPos: 64, RMSEps: 1e-5, RopeTheta: 10000, TieEmbeddings: true, EOS: []int{2}, Pad: -1}, kernels.F32, 1)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPEFTRoundTrip(t *testing.T) {
	m := tinyModel(t, 32)
	ad, err := lora.Apply(m, lora.Config{Rank: 4, Alpha: 8, Dropout: 0.05, Targets: []string{"q_proj", "v_proj", "down_proj"}, RSLoRA: true, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	for i := range ad.Values() {
		ad.Values()[i] = float32(r.NormFloat64())
	}
	dir := t.TempDir()
	if err := SaveAdapter(dir, ad, "some/base", nil); err != nil {
		t.Fatal(err)
	}
	m2 := tinyModel(t, 32)
	ad2, err := LoadAdapter(dir, m2)
	if err != nil {
		t.Fatal(err)
	}
	if len(ad2.Layers) != len(ad.Layers) || ad2.Config.Rank != 4 || ad2.Config.Alpha != 8 || !ad2.Config.RSLoRA || ad2.Config.Dropout != 0.05 {
		t.Fatalf("config did not round-trip: %+v", ad2.Config)
	}
	for i, p := range ad.Params() {
		q := ad2.Params()[i]
		if p.Name != q.Name {
			t.Fatalf("param %d: %s vs %s", i, q.Name, p.Name)
		}
		for j := range p.T.Data {
			if math.Float32bits(p.T.Data[j]) != math.Float32bits(q.T.Data[j]) {
				t.Fatalf("param %s[%d]: %g vs %g", p.Name, j, q.T.Data[j], p.T.Data[j])
			}
		}
	}
	// The config has exactly the keys PEFT writes.
	var ours, peft map[string]any
	raw, _ := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	json.Unmarshal(raw, &ours)
	ref, err := os.ReadFile(testassets.Path(t, "peft/adapter_config.lora-llama-3.2-3B-rank32.json"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(ref, &peft)
	keys := func(m map[string]any) string {
		var k []string
		for s := range m {
			k = append(k, s)
		}
		sort.Strings(k)
		return strings.Join(k, ",")
	}
	if keys(ours) != keys(peft) {
		t.Errorf("adapter_config.json keys differ from PEFT's:\n ours %s\n peft %s", keys(ours), keys(peft))
	}
	if ours["peft_type"] != "LORA" || ours["task_type"] != "CAUSAL_LM" || ours["r"] != 4.0 || ours["base_model_name_or_path"] != "some/base" {
		t.Errorf("values: %v", ours)
	}
	if tm, _ := json.Marshal(ours["target_modules"]); string(tm) != `["down_proj","q_proj","v_proj"]` {
		t.Errorf("target_modules %s", tm)
	}
	// PEFT's own config reads (r 32, alpha 64, no target list).
	pd := t.TempDir()
	os.WriteFile(filepath.Join(pd, "adapter_config.json"), ref, 0o644)
	c, pc, err := ReadPEFTConfig(pd)
	if err != nil || c.Rank != 32 || c.Alpha != 64 || c.Targets != nil || pc.TaskType != "CAUSAL_LM" {
		t.Errorf("PEFT's config: %+v %v", c, err)
	}
}

func TestPEFTMismatch(t *testing.T) {
	m := tinyModel(t, 32)
	ad, _ := lora.Apply(m, lora.Config{Rank: 2, Alpha: 4})
	dir := t.TempDir()
	if err := SaveAdapter(dir, ad, "", nil); err != nil {
		t.Fatal(err)
	}
	// Another model shape: the error names the tensor and the shapes.
	if _, err := LoadAdapter(dir, tinyModel(t, 40)); err == nil || !strings.Contains(err.Error(), "lora_A.weight has shape") {
		t.Errorf("shape mismatch: %v", err)
	}
	// A config targeting fewer modules than the weights file holds.
	raw, _ := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte(strings.Replace(string(raw), `"target_modules": [`, `"target_modules": ["q_proj"], "x": [`, 1)), 0o644)
	m3 := tinyModel(t, 32)
	if _, err := LoadAdapter(dir, m3); err == nil || !strings.Contains(err.Error(), "matches no projection") {
		t.Errorf("extra tensors: %v", err)
	}
	for _, lin := range m3.Blocks[0].Linears() {
		if _, ok := (*lin).(*lora.Linear); ok {
			t.Fatal("a failed load left adapters attached")
		}
	}
	if _, err := LoadAdapter(t.TempDir(), tinyModel(t, 32)); err == nil || !strings.Contains(err.Error(), "adapter_config.json") {
		t.Errorf("empty dir: %v", err)
	}
}

// TestPEFTExtras: trained norms are saved as modules_to_save and restored.
func TestPEFTExtras(t *testing.T) {
	m := tinyModel(t, 32)
	ad, err := lora.Apply(m, lora.Config{Rank: 2, Alpha: 4, TrainNorms: true, LoRAPlusRatio: 16})
	if err != nil {
		t.Fatal(err)
	}
	if ps := ad.Params(); len(ad.Extras) != 5 || ps[1].LRScale != 16 || ps[0].LRScale != 1 || ps[len(ps)-1].LRScale != 1 {
		t.Fatalf("extras %d, scales %v %v", len(ad.Extras), ps[0], ps[1])
	}
	m.Norm.Data[3] = 42
	dir := t.TempDir()
	if err := SaveAdapter(dir, ad, "", nil); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if !strings.Contains(string(raw), `"post_attention_layernorm"`) {
		t.Errorf("modules_to_save missing: %s", raw)
	}
	m2 := tinyModel(t, 32)
	if _, err := LoadAdapter(dir, m2); err != nil {
		t.Fatal(err)
	}
	if m2.Norm.Data[3] != 42 {
		t.Errorf("saved norm not restored: %g", m2.Norm.Data[3])
	}
}

func TestPEFTDoRA(t *testing.T) {
	m := tinyModel(t, 32)
	ad, err := lora.Apply(m, lora.Config{Rank: 2, Alpha: 4, DoRA: true})
	if err != nil {
		t.Fatal(err)
	}
	ad.Layers[1].Magnitude.Data[2] = 7
	dir := t.TempDir()
	if err := SaveAdapter(dir, ad, "", nil); err != nil {
		t.Fatal(err)
	}
	m2 := tinyModel(t, 32)
	ad2, err := LoadAdapter(dir, m2)
	if err != nil {
		t.Fatal(err)
	}
	if !ad2.Config.DoRA || ad2.Layers[1].Magnitude.Data[2] != 7 {
		t.Errorf("DoRA did not round-trip: %v", ad2.Config.DoRA)
	}
}
