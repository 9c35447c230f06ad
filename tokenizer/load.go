package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"github.com/lowrank/lowrank/checkpoints/gguf"
)

// Load reads the tokenizer of a model: a directory with tokenizer.json (and
// tokenizer_config.json), or a .gguf file with an embedded vocabulary.
func Load(path string) (*Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, errorf("%v", err)
	}
	if st.IsDir() {
		return FromDir(path)
	}
	g, err := gguf.Open(path)
	if err != nil {
		return nil, errorf("%v", err)
	}
	defer g.Close()
	return FromGGUF(g)
}

type tokJSON struct {
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	AddedTokens   []struct {
		ID         int32  `json:"id"`
		Content    string `json:"content"`
		Special    bool   `json:"special"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
	} `json:"added_tokens"`
	Model struct {
		Type         string           `json:"type"`
		Vocab        map[string]int32 `json:"vocab"`
		Merges       json.RawMessage  `json:"merges"`
		UnkToken     *string          `json:"unk_token"`
		ByteFallback bool             `json:"byte_fallback"`
	} `json:"model"`
}

// FromDir reads tokenizer.json and tokenizer_config.json from dir.
func FromDir(dir string) (*Tokenizer, error) {
	path := filepath.Join(dir, "tokenizer.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, errorf("%v", err)
	}
	var tj tokJSON
	if err := json.Unmarshal(raw, &tj); err != nil {
		return nil, errorf("%s: %v", path, err)
	}
	if tj.Model.Type != "BPE" {
		return nil, errorf("%s: model type %q is not supported (BPE only)", path, tj.Model.Type)
	}
	if strings.Contains(string(tj.PreTokenizer), "ByteLevel") || !strings.Contains(string(tj.Normalizer), "▁") && !strings.Contains(string(tj.Normalizer), `\u2581`) {
		return nil, errorf("%s: byte-level BPE (GPT-2, Llama-3, Qwen style) is not supported yet; SentencePiece-style BPE is", path)
	}
	t := &Tokenizer{ids: tj.Model.Vocab, fallb: tj.Model.ByteFallback, BOS: -1, EOS: -1, unk: -1, strip: true}
	t.prefix = strings.Contains(string(tj.Normalizer), "Prepend")
	t.strip = strings.Contains(string(tj.Decoder), `"Strip"`)
	n := int32(0)
	for _, id := range t.ids {
		n = max(n, id+1)
	}
	for _, a := range tj.AddedTokens {
		n = max(n, a.ID+1)
	}
	t.pieces = make([]string, n)
	for p, id := range t.ids {
		t.pieces[id] = p
	}
	for _, a := range tj.AddedTokens {
		t.pieces[a.ID] = a.Content
		t.ids[a.Content] = a.ID
		t.added = append(t.added, added{content: a.Content, id: a.ID, special: a.Special, lstrip: a.LStrip, rstrip: a.RStrip, normalized: a.Normalized})
	}
	if tj.Model.UnkToken != nil {
		t.unk = t.ids[*tj.Model.UnkToken]
	}
	t.ranks = map[[2]int32]int32{}
	var asStrings []string
	var asPairs [][2]string
	if err := json.Unmarshal(tj.Model.Merges, &asStrings); err == nil {
		for _, m := range asStrings {
			// "left right": pieces may themselves contain spaces, so split at the
			// space where both halves are in the vocabulary.
			split := false
			for i := 0; i < len(m); i++ {
				if m[i] != ' ' {
					continue
				}
				_, lok := t.ids[m[:i]]
				_, rok := t.ids[m[i+1:]]
				if lok && rok {
					asPairs = append(asPairs, [2]string{m[:i], m[i+1:]})
					split = true
					break
				}
			}
			if !split {
				return nil, errorf("%s: merge %q is not two pieces of the vocabulary", path, m)
			}
		}
	} else if err := json.Unmarshal(tj.Model.Merges, &asPairs); err != nil {
		return nil, errorf("%s: merges: %v", path, err)
	}
	for rank, m := range asPairs {
		l, lok := t.ids[m[0]]
		r, rok := t.ids[m[1]]
		if !lok || !rok {
			return nil, errorf("%s: merge %q %q names a piece outside the vocabulary", path, m[0], m[1])
		}
		if _, dup := t.ranks[[2]int32{l, r}]; !dup {
			t.ranks[[2]int32{l, r}] = int32(rank)
		}
	}
	// BOS from the post-processor template; add_bos/eos and names from the config.
	if strings.Contains(string(tj.PostProcessor), "TemplateProcessing") {
		var pp struct {
			Single []struct {
				SpecialToken *struct {
					ID string `json:"id"`
				} `json:"SpecialToken"`
			} `json:"single"`
		}
		if json.Unmarshal(tj.PostProcessor, &pp) == nil && len(pp.Single) > 0 && pp.Single[0].SpecialToken != nil {
			if id, ok := t.ids[pp.Single[0].SpecialToken.ID]; ok {
				t.BOS, t.addBOS = id, true
			}
		}
	}
	if cfgRaw, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json")); err == nil {
		var cfg map[string]json.RawMessage
		if err := json.Unmarshal(cfgRaw, &cfg); err != nil {
			return nil, errorf("%s: %v", filepath.Join(dir, "tokenizer_config.json"), err)
		}
		if v, ok := cfg["bos_token"]; ok {
			if id, ok := t.ids[tokenName(v)]; ok {
				t.BOS = id
			}
		}
		if v, ok := cfg["eos_token"]; ok {
			if id, ok := t.ids[tokenName(v)]; ok {
				t.EOS = id
			}
		}
		if v, ok := cfg["add_bos_token"]; ok {
			json.Unmarshal(v, &t.addBOS)
		}
		if v, ok := cfg["add_eos_token"]; ok {
			json.Unmarshal(v, &t.addEOS)
		}
	}
	t.init()
	return t, nil
}

// tokenName reads a token given as a string or as {"content": ...}.
func tokenName(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		Content string `json:"content"`
	}
	json.Unmarshal(raw, &o)
	return o.Content
}

// FromGGUF reads a vocabulary embedded in GGUF metadata (tokenizer.ggml.*).
func FromGGUF(g *gguf.File) (*Tokenizer, error) {
	model, _ := g.String("tokenizer.ggml.model")
	if model != "llama" {
		return nil, errorf("%s: tokenizer.ggml.model %q is not supported yet (llama/SentencePiece only)", g.Path, model)
	}
	tv, _ := g.Get("tokenizer.ggml.tokens")
	pieces, ok := tv.([]string)
	if !ok || len(pieces) == 0 {
		return nil, errorf("%s: no tokenizer.ggml.tokens", g.Path)
	}
	sv, _ := g.Get("tokenizer.ggml.scores")
	scores, _ := sv.([]float32)
	if len(scores) != len(pieces) {
		return nil, errorf("%s: %d scores for %d tokens", g.Path, len(scores), len(pieces))
	}
	t := &Tokenizer{pieces: pieces, ids: make(map[string]int32, len(pieces)), scores: scores, fallb: true, prefix: true, strip: true, BOS: -1, EOS: -1}
	for i, p := range pieces {
		if _, dup := t.ids[p]; !dup {
			t.ids[p] = int32(i)
		}
	}
	tt, _ := g.Get("tokenizer.ggml.token_type")
	types, _ := tt.([]int32)
	for i, ty := range types {
		if ty == 2 || ty == 3 || ty == 4 { // unknown, control, user-defined: matched in text as llama.cpp does
			t.added = append(t.added, added{content: pieces[i], id: int32(i), special: ty != 4})
		}
		if ty == 2 {
			t.unk = int32(i)
		}
	}
	if v, ok := g.Uint("tokenizer.ggml.unknown_token_id"); ok {
		t.unk = int32(v)
	}
	if v, ok := g.Uint("tokenizer.ggml.bos_token_id"); ok {
		t.BOS = int32(v)
	}
	if v, ok := g.Uint("tokenizer.ggml.eos_token_id"); ok {
		t.EOS = int32(v)
	}
	t.addBOS = true
	if v, ok := g.Get("tokenizer.ggml.add_bos_token"); ok {
		t.addBOS, _ = v.(bool)
	}
	if v, ok := g.Get("tokenizer.ggml.add_eos_token"); ok {
		t.addEOS, _ = v.(bool)
	}
	if v, ok := g.Get("tokenizer.ggml.add_space_prefix"); ok {
		t.prefix, _ = v.(bool)
	}
	t.init()
	return t, nil
}
