package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/lowrank/lowrank/checkpoints/gguf"
	"github.com/lowrank/lowrank/internal/hfcache"
)

// Load reads the tokenizer of a model: a directory with tokenizer.json (and
// tokenizer_config.json), or a .gguf file with an embedded vocabulary, or a
// Hugging Face hub id (org/name[@revision]) of a model in the local hub cache.
func Load(path string) (*Tokenizer, error) {
	path, err := hfcache.Resolve(path)
	if err != nil {
		return nil, fmt.Errorf("model %w", err) // the model reference itself is wrong, not its tokenizer
	}
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("model %s: no such file or directory", path)
	}
	if err != nil {
		return nil, fmt.Errorf("model %w", err)
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
		IgnoreMerges bool             `json:"ignore_merges"`
		Vocab        map[string]int32 `json:"vocab"`
		Merges       json.RawMessage  `json:"merges"`
		UnkToken     *string          `json:"unk_token"`
		ByteFallback bool             `json:"byte_fallback"`
	} `json:"model"`
}

// FromDir reads tokenizer.json and tokenizer_config.json from dir, or a GPT-2
// style vocab.json + merges.txt pair.
func FromDir(dir string) (*Tokenizer, error) {
	path := filepath.Join(dir, "tokenizer.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		if _, verr := os.Stat(filepath.Join(dir, "vocab.json")); verr == nil {
			return fromVocabMerges(dir)
		}
		return nil, errorf("%v", err)
	}
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	cfgRaw, err := os.ReadFile(cfgPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, errorf("%v", err)
	}
	t, err := fromJSON(path, raw, cfgPath, cfgRaw)
	if err != nil {
		return nil, err
	}
	if err := t.loadChatTemplate(dir); err != nil {
		return nil, errorf("%v", err)
	}
	return t, nil
}

// maxVocab bounds token ids read from a file: far above any real
// vocabulary (Gemma's 262k), and low enough that the tables sized by the
// largest id stay small.
const maxVocab = 1 << 24

// fromJSON builds a tokenizer from tokenizer.json's bytes (named path) and
// tokenizer_config.json's (cfgRaw, nil when absent), without a chat template.
func fromJSON(path string, raw []byte, cfgPath string, cfgRaw []byte) (*Tokenizer, error) {
	var tj tokJSON
	if err := json.Unmarshal(raw, &tj); err != nil {
		return nil, errorf("%s: %v", path, err)
	}
	if tj.Model.Type != "BPE" {
		return nil, errorf("%s: model type %q is not supported (BPE only)", path, tj.Model.Type)
	}
	if len(tj.Model.Vocab) == 0 {
		return nil, errorf("%s: the BPE model has no vocab", path)
	}
	for p, id := range tj.Model.Vocab {
		if id < 0 || id >= maxVocab {
			return nil, errorf("%s: vocab entry %q has id %d (want 0 to %d)", path, p, id, maxVocab-1)
		}
	}
	for _, a := range tj.AddedTokens {
		if a.ID < 0 || a.ID >= maxVocab {
			return nil, errorf("%s: added token %q has id %d (want 0 to %d)", path, a.Content, a.ID, maxVocab-1)
		}
		if a.Content == "" {
			return nil, errorf("%s: added token %d is empty", path, a.ID)
		}
	}
	t := &Tokenizer{ids: tj.Model.Vocab, fallb: tj.Model.ByteFallback, BOS: -1, EOS: -1, unk: -1, strip: true}
	if strings.Contains(string(tj.PreTokenizer), "ByteLevel") {
		if err := t.setByteLevel(tj.PreTokenizer, tj.Normalizer); err != nil {
			return nil, errorf("%s: %v", path, err)
		}
		t.ignoreMerges = tj.Model.IgnoreMerges
	} else if !strings.Contains(string(tj.Normalizer), "▁") && !strings.Contains(string(tj.Normalizer), `\u2581`) {
		return nil, errorf("%s: neither SentencePiece-style (a ▁ normalizer) nor byte-level BPE", path)
	} else {
		t.prefix = strings.Contains(string(tj.Normalizer), "Prepend")
		t.strip = strings.Contains(string(tj.Decoder), `"Strip"`)
	}
	n := int32(0)
	for _, id := range t.ids {
		n = max(n, id+1)
	}
	for _, a := range tj.AddedTokens {
		n = max(n, a.ID+1)
	}
	// Ids are dense in real files; tables sized by the largest id stay
	// proportional to the file.
	if held := len(t.ids) + len(tj.AddedTokens); int(n) > 2*held+1024 {
		return nil, errorf("%s: token ids reach %d for %d tokens: the file is damaged", path, n-1, held)
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
		id, ok := t.ids[*tj.Model.UnkToken]
		if !ok {
			return nil, errorf("%s: unk_token %q is not in the vocabulary", path, *tj.Model.UnkToken)
		}
		t.unk = id
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
	if cfgRaw != nil {
		var cfg map[string]json.RawMessage
		if err := json.Unmarshal(cfgRaw, &cfg); err != nil {
			return nil, errorf("%s: %v", cfgPath, err)
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
		if v, ok := cfg["clean_up_tokenization_spaces"]; ok && t.byteLevel {
			json.Unmarshal(v, &t.cleanup)
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
	tv, _ := g.Get("tokenizer.ggml.tokens")
	pieces, ok := tv.([]string)
	if !ok || len(pieces) == 0 {
		return nil, errorf("%s: no tokenizer.ggml.tokens", g.Path)
	}
	if model == "gpt2" {
		return fromGGUFBPE(g, pieces)
	}
	if model != "llama" {
		return nil, errorf("%s: tokenizer.ggml.model %q is not supported (llama, gpt2)", g.Path, model)
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
	if err := t.ggufChatTemplate(g); err != nil {
		return nil, err
	}
	t.init()
	return t, nil
}

// ggufChatTemplate takes tokenizer.chat_template, if the file has one.
func (t *Tokenizer) ggufChatTemplate(g *gguf.File) error {
	if src, ok := g.String("tokenizer.chat_template"); ok && src != "" {
		if err := t.SetChatTemplate(src); err != nil {
			return errorf("%s: tokenizer.chat_template: %v", g.Path, err)
		}
	}
	return nil
}

// setByteLevel configures byte-level BPE from a tokenizer.json pre-tokenizer.
func (t *Tokenizer) setByteLevel(pre, normalizer json.RawMessage) error {
	t.byteLevel, t.strip, t.cache = true, false, map[string][]int32{}
	switch n := strings.TrimSpace(string(normalizer)); {
	case n == "" || n == "null":
	case strings.Contains(n, `"NFC"`) && !strings.Contains(n, "Sequence"):
		t.nfc = true
	default:
		return fmt.Errorf("normalizer %s is not supported with byte-level BPE", n)
	}
	var p struct {
		Type          string `json:"type"`
		UseRegex      bool   `json:"use_regex"`
		Pretokenizers []struct {
			Type    string `json:"type"`
			Pattern struct {
				Regex  string `json:"Regex"`
				String string `json:"String"`
			} `json:"pattern"`
			Behavior         string `json:"behavior"`
			Invert           bool   `json:"invert"`
			IndividualDigits bool   `json:"individual_digits"`
			UseRegex         bool   `json:"use_regex"`
		} `json:"pretokenizers"`
	}
	if err := json.Unmarshal(pre, &p); err != nil {
		return fmt.Errorf("pre_tokenizer: %v", err)
	}
	switch {
	case p.Type == "ByteLevel" && p.UseRegex:
		t.pre = preGPT2
		return nil
	case p.Type == "Sequence" && len(p.Pretokenizers) == 2 && p.Pretokenizers[1].Type == "ByteLevel":
		first := p.Pretokenizers[0]
		switch {
		case first.Type == "Split" && first.Pattern.Regex == patLlama3 && !p.Pretokenizers[1].UseRegex:
			t.pre = preLlama3
			return nil
		case first.Type == "Split" && first.Pattern.Regex == patQwen2 && !p.Pretokenizers[1].UseRegex:
			t.pre = preQwen2
			return nil
		case first.Type == "Split" && first.Pattern.Regex == patGPT2 && !p.Pretokenizers[1].UseRegex:
			t.pre = preGPT2
			return nil
		case first.Type == "Digits" && first.IndividualDigits && p.Pretokenizers[1].UseRegex:
			t.pre = preStarCoder
			return nil
		}
	}
	// Otherwise: a sequence of Isolated splits (and digit splits) that Go's
	// regexp can run, then ByteLevel without its own regex (DeepSeek-LLM's form).
	if p.Type == "Sequence" && len(p.Pretokenizers) >= 2 {
		n := len(p.Pretokenizers)
		if last := p.Pretokenizers[n-1]; last.Type == "ByteLevel" && !last.UseRegex {
			var res []*regexp.Regexp
			ok := true
			for _, s := range p.Pretokenizers[:n-1] {
				var pat string
				switch {
				case s.Type == "Split" && (s.Behavior == "Isolated" || s.Behavior == "") && !s.Invert:
					pat = s.Pattern.Regex
					if pat == "" {
						pat = regexp.QuoteMeta(s.Pattern.String)
					}
				case s.Type == "Digits":
					pat = `\p{N}+`
					if s.IndividualDigits {
						pat = `\p{N}`
					}
				default:
					ok = false
				}
				if !ok {
					break
				}
				re, err := compileSplit(pat)
				if err != nil {
					ok = false
					break
				}
				res = append(res, re)
			}
			if ok {
				t.pre, t.splits = preSplits, res
				return nil
			}
		}
	}
	return fmt.Errorf("pre_tokenizer %.200s is not supported (supported: GPT-2, Llama-3, Qwen2/3 and StarCoder/SmolLM2 patterns, and Split sequences without lookahead such as DeepSeek-LLM's)", pre)
}

// fromVocabMerges reads GPT-2's vocab.json + merges.txt: byte-level BPE with
// the GPT-2 pattern and <|endoftext|> as a special token.
func fromVocabMerges(dir string) (*Tokenizer, error) {
	vpath, mpath := filepath.Join(dir, "vocab.json"), filepath.Join(dir, "merges.txt")
	vraw, err := os.ReadFile(vpath)
	if err != nil {
		return nil, errorf("%v", err)
	}
	mraw, err := os.ReadFile(mpath)
	if err != nil {
		return nil, errorf("%v", err)
	}
	t := &Tokenizer{BOS: -1, EOS: -1, unk: -1, byteLevel: true, pre: preGPT2, cache: map[string][]int32{}}
	if err := json.Unmarshal(vraw, &t.ids); err != nil {
		return nil, errorf("%s: %v", vpath, err)
	}
	var merges []string
	for i, line := range strings.Split(string(mraw), "\n") {
		if line == "" || (i == 0 && strings.HasPrefix(line, "#version")) {
			continue
		}
		merges = append(merges, line)
	}
	if err := t.setVocab(merges); err != nil {
		return nil, errorf("%s: %v", mpath, err)
	}
	if id, ok := t.ids["<|endoftext|>"]; ok {
		t.added = append(t.added, added{content: "<|endoftext|>", id: id, special: true})
		t.BOS, t.EOS = id, id
	}
	t.init()
	return t, nil
}

// setVocab builds pieces from ids and ranks from "left right" merge lines.
func (t *Tokenizer) setVocab(merges []string) error {
	n := int32(0)
	for _, id := range t.ids {
		n = max(n, id+1)
	}
	t.pieces = make([]string, n)
	for p, id := range t.ids {
		t.pieces[id] = p
	}
	t.ranks = make(map[[2]int32]int32, len(merges))
	for rank, m := range merges {
		l, r, ok := strings.Cut(m, " ")
		li, lok := t.ids[l]
		ri, rok := t.ids[r]
		if !ok || !lok || !rok {
			return fmt.Errorf("merge %q is not two pieces of the vocabulary", m)
		}
		if _, dup := t.ranks[[2]int32{li, ri}]; !dup {
			t.ranks[[2]int32{li, ri}] = int32(rank)
		}
	}
	return nil
}

// ggufPre maps tokenizer.ggml.pre to a pattern.
var ggufPre = map[string]preTokenizer{
	"default": preGPT2, "gpt-2": preGPT2, "gpt2": preGPT2,
	"llama-bpe": preLlama3, "llama3": preLlama3, "llama-v3": preLlama3,
	"qwen2": preQwen2, "deepseek-r1-qwen": preQwen2,
	"starcoder": preStarCoder, "smollm": preStarCoder,
	"deepseek-llm": preDeepSeekLLM,
}

// fromGGUFBPE reads a GGUF "gpt2" (byte-level BPE) vocabulary.
func fromGGUFBPE(g *gguf.File, pieces []string) (*Tokenizer, error) {
	preName, _ := g.String("tokenizer.ggml.pre")
	pre, ok := ggufPre[preName]
	if !ok {
		return nil, errorf("%s: byte-level pre-tokenizer %q is not supported yet", g.Path, preName)
	}
	mv, _ := g.Get("tokenizer.ggml.merges")
	merges, _ := mv.([]string)
	t := &Tokenizer{ids: make(map[string]int32, len(pieces)), BOS: -1, EOS: -1, unk: -1, byteLevel: true, pre: pre, cache: map[string][]int32{}}
	for i, p := range pieces {
		if _, dup := t.ids[p]; !dup {
			t.ids[p] = int32(i)
		}
	}
	if err := t.setVocab(merges); err != nil {
		return nil, errorf("%s: %v", g.Path, err)
	}
	t.ignoreMerges = pre == preLlama3
	tt, _ := g.Get("tokenizer.ggml.token_type")
	types, _ := tt.([]int32)
	for i, ty := range types {
		if ty == 3 || ty == 4 {
			t.added = append(t.added, added{content: pieces[i], id: int32(i), special: ty == 3})
		}
	}
	if v, ok := g.Uint("tokenizer.ggml.bos_token_id"); ok {
		t.BOS = int32(v)
	}
	if v, ok := g.Uint("tokenizer.ggml.eos_token_id"); ok {
		t.EOS = int32(v)
	}
	if v, ok := g.Get("tokenizer.ggml.add_bos_token"); ok {
		t.addBOS, _ = v.(bool)
	}
	if err := t.ggufChatTemplate(g); err != nil {
		return nil, err
	}
	t.init()
	return t, nil
}
