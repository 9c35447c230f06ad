package data

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/lowrank/lowrank/internal/hfcache"
	"github.com/parquet-go/parquet-go"
)

// Row is one record: column name → value (strings, numbers, bools, nested
// []any and map[string]any).
type Row map[string]any

// Source streams rows. Next returns io.EOF after the last row.
type Source interface {
	Next() (Row, error)
	// Where describes the current position for messages: "file.parquet row 41".
	Where() string
	Close() error
}

// Open returns a source for a file, a glob, or a directory of shards (the
// Hub's data/train-00000-of-00004.parquet layout). split ("train",
// "validation", "test" or "") selects shards by name in a directory.
func Open(path, split string) (Source, error) {
	return OpenWith(path, SourceOptions{Split: split})
}

// SourceOptions say how to read a dataset's files.
type SourceOptions struct {
	Split string // as for Open
	// TextUnit is what one example of a .txt/.md file is: "block" (default:
	// each blank-line-separated block) or "file" (the whole file).
	TextUnit string
}

// OpenWith is Open with options.
func OpenWith(path string, o SourceOptions) (Source, error) {
	switch o.TextUnit {
	case "", "block", "file":
	default:
		return nil, fmt.Errorf("data: text unit %q: want block or file", o.TextUnit)
	}
	files, err := resolve(path, o.Split)
	if err != nil {
		return nil, err
	}
	return &multi{files: files, opts: o}, nil
}

var dataExts = map[string]bool{".parquet": true, ".jsonl": true, ".json": true, ".csv": true, ".tsv": true, ".txt": true, ".md": true}

// CheckPath reports, before anything slow is done, a data path that names
// no file: a missing file or folder, a glob that matches nothing, a folder
// without data files.
func CheckPath(path string) error {
	_, err := resolve(path, "")
	return err
}

// resolve lists the data files of path in split ("": all). In a
// directory a validation split answers to any of its names, the one asked
// for first: --split validation reads WikiSQL's valid.parquet, as the
// datasets library's file patterns do.
func resolve(path, split string) ([]string, error) { return resolveSplit(path, split, true) }

// resolveSplit is resolve; with aliases false a directory's split is
// matched by its own name alone.
func resolveSplit(path, split string, aliases bool) ([]string, error) {
	if hfcache.IsDatasetRef(path) {
		return hubFiles(path, split)
	}
	if strings.ContainsAny(path, "*?[") {
		m, err := filepath.Glob(path)
		if err != nil {
			return nil, fmt.Errorf("data: %s: %v", path, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("data: %s matches no file", path)
		}
		sort.Strings(m)
		return m, nil
	}
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("data %s: no such file or directory", path)
	}
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	names := []string{split} // the name asked for, then a validation split's other names
	if aliases && slices.Contains(hfcache.ValidationSplits, split) {
		for _, n := range hfcache.ValidationSplits {
			if n != split {
				names = append(names, n)
			}
		}
	}
	var files []string
	byName := make([][]string, len(names))
	err = filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && dataExts[strings.ToLower(filepath.Ext(p))] {
			if split == "" {
				files = append(files, p)
				return nil
			}
			for i, n := range names {
				if inSplit(path, p, n) {
					byName[i] = append(byName[i], p)
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("data: %s: %v", path, err)
	}
	for _, f := range byName {
		if len(f) > 0 {
			files = f
			break
		}
	}
	if len(files) == 0 {
		where := ""
		if split != "" {
			where = fmt.Sprintf(" for split %q", split)
		}
		return nil, fmt.Errorf("data: %s holds no .parquet, .jsonl, .json, .csv, .tsv or .txt files%s", path, where)
	}
	sort.Strings(files)
	return oneFormatPerName(files), nil
}

// extRank orders the formats one dataset file may be exported in.
var extRank = map[string]int{".parquet": 0, ".jsonl": 1, ".json": 2, ".csv": 3, ".tsv": 4, ".txt": 5, ".md": 6}

// oneFormatPerName keeps, of files that differ only in their extension
// (train.parquet and train.jsonl: the same data exported twice), the first
// in the order Parquet, JSONL, JSON, text.
func oneFormatPerName(files []string) []string {
	best := map[string]string{}
	for _, f := range files {
		stem := strings.TrimSuffix(f, filepath.Ext(f))
		if b, ok := best[stem]; !ok || extRank[strings.ToLower(filepath.Ext(f))] < extRank[strings.ToLower(filepath.Ext(b))] {
			best[stem] = f
		}
	}
	out := files[:0]
	for _, f := range files {
		if best[strings.TrimSuffix(f, filepath.Ext(f))] == f {
			out = append(out, f)
		}
	}
	return out
}

// hubFiles are the Parquet files of a hub dataset (hf://datasets/...) in
// split ("": all that were fetched: the train split's and the validation
// splits'), downloaded into the Hugging Face cache as needed.
func hubFiles(ref, split string) ([]string, error) {
	root, files, err := hfcache.Dataset(ref, split)
	if err != nil {
		return nil, fmt.Errorf("data: %v", err)
	}
	var out []string
	for _, f := range files {
		if split == "" || inSplit(root, f, split) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("data: %s has no files for split %q", ref, split)
	}
	sort.Strings(out)
	return out, nil
}

// inSplit reports whether file p under root belongs to split by the Hub's
// naming (hfcache.InSplit).
func inSplit(root, p, split string) bool {
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return false
	}
	return hfcache.InSplit(filepath.ToSlash(rel), split)
}

// HasSplit reports whether path is a directory (or a hub dataset) holding
// files of split ("train", "validation", "test") by the Hub's naming (in a
// directory, a validation split by any of its names).
func HasSplit(path, split string) bool { return hasSplit(path, split, true) }

func hasSplit(path, split string, aliases bool) bool {
	if hfcache.IsDatasetRef(path) {
		root, files, err := hfcache.DatasetFiles(path)
		return err == nil && slices.ContainsFunc(files, func(f string) bool { return inSplit(root, f, split) })
	}
	if st, err := os.Stat(path); err != nil || !st.IsDir() {
		return false
	}
	_, err := resolveSplit(path, split, aliases)
	return err == nil
}

// ValidationSplit returns the name under which directory path holds
// validation shards — "validation" (the Hub's), "valid", "val" or "dev" —
// or "" when it has none.
func ValidationSplit(path string) string {
	for _, name := range hfcache.ValidationSplits {
		if hasSplit(path, name, false) {
			return name
		}
	}
	return ""
}

// multi reads its files one after another.
type multi struct {
	opts  SourceOptions
	files []string
	i     int
	cur   Source
}

func (m *multi) Next() (Row, error) {
	for {
		if m.cur == nil {
			if m.i >= len(m.files) {
				return nil, io.EOF
			}
			s, err := openFile(m.files[m.i], m.opts)
			if err != nil {
				return nil, err
			}
			m.cur = s
			m.i++
		}
		r, err := m.cur.Next()
		if err == io.EOF {
			m.cur.Close()
			m.cur = nil
			continue
		}
		return r, err
	}
}

func (m *multi) Where() string {
	if m.cur == nil {
		return ""
	}
	return m.cur.Where()
}

func (m *multi) Close() error {
	if m.cur != nil {
		return m.cur.Close()
	}
	return nil
}

func openFile(path string, o SourceOptions) (Source, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".parquet":
		return openParquet(path)
	case ".jsonl":
		return openJSONL(path)
	case ".json":
		return openJSONArray(path)
	case ".csv":
		return openCSV(path, ',')
	case ".tsv":
		return openCSV(path, '\t')
	default:
		return openText(path, o.TextUnit == "file")
	}
}

// ---- Parquet ----

type parquetSource struct {
	path  string
	f     *os.File
	pf    *parquet.File
	group int
	rows  parquet.Rows
	buf   []parquet.Row
	n, at int   // rows in buf, next index
	row   int64 // rows returned so far
}

// maxStringBytes bounds one value read from a file: larger means a corrupt
// or hostile file (large_string_map.brotli.parquet decodes to over 2 GB).
const maxStringBytes = 64 << 20

func openParquet(path string) (s Source, err error) {
	defer recoverTo(&err, path)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data: %w", err)
	}
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data: %s: not a readable Parquet file: %v", path, err)
	}
	if err := checkSchema(path, pf.Metadata()); err != nil {
		f.Close()
		return nil, err
	}
	return &parquetSource{path: path, f: f, pf: pf, buf: make([]parquet.Row, 64)}, nil
}

// recoverTo turns a panic inside the Parquet library (seen on malformed files)
// into an error naming the file.
func recoverTo(err *error, path string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("data: %s: corrupt or unsupported Parquet data: %v", path, r)
	}
}

func (p *parquetSource) Next() (r Row, err error) {
	defer recoverTo(&err, p.path)
	for p.at >= p.n {
		if p.rows == nil {
			groups := p.pf.RowGroups()
			if p.group >= len(groups) {
				return nil, io.EOF
			}
			if err := p.checkGroup(p.group); err != nil {
				return nil, err
			}
			if err := p.checkPages(p.group); err != nil {
				return nil, err
			}
			p.rows = groups[p.group].Rows()
			p.group++
		}
		n, err := p.rows.ReadRows(p.buf)
		p.n, p.at = n, 0
		if n == 0 {
			p.rows.Close()
			p.rows = nil
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("data: %s row group %d: %v", p.path, p.group-1, err)
			}
		} else if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("data: %s row group %d: %v", p.path, p.group-1, err)
		}
	}
	pr := p.buf[p.at]
	p.at++
	p.row++
	if err := p.checkRow(pr); err != nil {
		return nil, err
	}
	for _, v := range pr {
		if v.Kind() == parquet.ByteArray && len(v.ByteArray()) > maxStringBytes {
			return nil, fmt.Errorf("data: %s row %d: a value of %d bytes exceeds the %d MiB limit", p.path, p.row-1, len(v.ByteArray()), maxStringBytes>>20)
		}
	}
	m := map[string]any{}
	if err := p.pf.Schema().Reconstruct(&m, pr); err != nil {
		return nil, fmt.Errorf("data: %s row %d: %v", p.path, p.row-1, err)
	}
	return Row(m), nil
}

// maxColumnChunk bounds the uncompressed size of one column chunk: a row
// group is decoded column by column, so this bounds the memory one read can
// take whatever the file claims.
const maxColumnChunk = 512 << 20

// checkGroup validates a row group's column chunks from the footer before any
// page is read: sizes within bounds, byte ranges inside the file, counts sane.
func (p *parquetSource) checkGroup(g int) error {
	md := p.pf.Metadata()
	if g >= len(md.RowGroups) {
		return fmt.Errorf("data: %s: row group %d missing from the footer", p.path, g)
	}
	rg := md.RowGroups[g]
	if rg.NumRows < 0 {
		return fmt.Errorf("data: %s row group %d: negative row count %d", p.path, g, rg.NumRows)
	}
	size := p.pf.Size()
	for _, cc := range rg.Columns {
		cm := cc.MetaData
		col := strings.Join(cm.PathInSchema, ".")
		switch {
		case cm.TotalUncompressedSize < 0 || cm.TotalCompressedSize < 0 || cm.NumValues < 0:
			return fmt.Errorf("data: %s row group %d column %q: negative sizes or counts in the footer", p.path, g, col)
		case cm.TotalUncompressedSize > maxColumnChunk:
			return fmt.Errorf("data: %s row group %d column %q: %d MiB uncompressed exceeds the %d MiB limit per column chunk (corrupt, or write smaller row groups)", p.path, g, col, cm.TotalUncompressedSize>>20, maxColumnChunk>>20)
		case cm.DataPageOffset < 0 || cm.DataPageOffset+cm.TotalCompressedSize > size+8:
			return fmt.Errorf("data: %s row group %d column %q: pages at [%d, %d) lie outside the file (%d bytes)", p.path, g, col, cm.DataPageOffset, cm.DataPageOffset+cm.TotalCompressedSize, size)
		}
	}
	return nil
}

func (p *parquetSource) Where() string { return fmt.Sprintf("%s row %d", p.path, p.row-1) }

func (p *parquetSource) Close() error {
	if p.rows != nil {
		p.rows.Close()
	}
	return p.f.Close()
}

// ---- JSONL ----

type jsonlSource struct {
	path string
	f    *os.File
	sc   *bufio.Scanner
	line int
}

func openJSONL(path string) (Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), maxStringBytes)
	return &jsonlSource{path: path, f: f, sc: sc}, nil
}

func (j *jsonlSource) Next() (Row, error) {
	for j.sc.Scan() {
		j.line++
		b := j.sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		if !utf8.Valid(b) {
			return nil, fmt.Errorf("data: %s line %d: not valid UTF-8", j.path, j.line)
		}
		var r map[string]any
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("data: %s line %d: not a JSON object: %v", j.path, j.line, err)
		}
		return Row(r), nil
	}
	if err := j.sc.Err(); err != nil {
		return nil, fmt.Errorf("data: %s line %d: %v", j.path, j.line+1, err)
	}
	return nil, io.EOF
}

func (j *jsonlSource) Where() string { return fmt.Sprintf("%s line %d", j.path, j.line) }
func (j *jsonlSource) Close() error  { return j.f.Close() }

// ---- CSV, TSV ----

// csvSource reads a table with a header row: each record is a row of
// strings keyed by the header's names (an empty field is an empty string,
// as pandas reads it with keep_default_na=False).
type csvSource struct {
	path   string
	f      *os.File
	r      *csv.Reader
	header []string
	line   int
}

func openCSV(path string, sep rune) (Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	r := csv.NewReader(bufio.NewReader(f))
	r.Comma, r.ReuseRecord = sep, false
	r.LazyQuotes = sep == '\t' // TSV files write quotes as text
	header, err := r.Read()
	if err == io.EOF {
		f.Close()
		return nil, fmt.Errorf("data: %s is empty: want a header row, then one row per example", path)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data: %s: %v", path, csvProblem(err))
	}
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")) // a byte-order mark from spreadsheets
		if h == "" || seen[h] {
			f.Close()
			return nil, fmt.Errorf("data: %s: header column %d is %q: want a distinct name for every column", path, i+1, h)
		}
		header[i], seen[h] = h, true
	}
	return &csvSource{path: path, f: f, r: r, header: header, line: 1}, nil
}

func csvProblem(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Sprintf("line %d: %v", pe.Line, pe.Err)
	}
	return err.Error()
}

func (c *csvSource) Next() (Row, error) {
	rec, err := c.r.Read()
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, fmt.Errorf("data: %s: %s", c.path, csvProblem(err))
	}
	c.line, _ = c.r.FieldPos(0)
	r := make(Row, len(rec))
	for i, v := range rec {
		if !utf8.ValidString(v) {
			return nil, fmt.Errorf("data: %s line %d column %q: not valid UTF-8", c.path, c.line, c.header[i])
		}
		r[c.header[i]] = v
	}
	return r, nil
}

func (c *csvSource) Where() string { return fmt.Sprintf("%s line %d", c.path, c.line) }
func (c *csvSource) Close() error  { return c.f.Close() }

// ---- JSON array ----

type jsonArraySource struct {
	path string
	f    *os.File
	dec  *json.Decoder
	i    int
}

func openJSONArray(path string) (Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	dec := json.NewDecoder(bufio.NewReader(f))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('[') {
		f.Close()
		return nil, fmt.Errorf("data: %s: want a JSON array of objects (or use .jsonl)", path)
	}
	return &jsonArraySource{path: path, f: f, dec: dec}, nil
}

func (j *jsonArraySource) Next() (Row, error) {
	if !j.dec.More() {
		return nil, io.EOF
	}
	var r map[string]any
	if err := j.dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("data: %s element %d: %v", j.path, j.i, err)
	}
	j.i++
	return Row(r), nil
}

func (j *jsonArraySource) Where() string { return fmt.Sprintf("%s element %d", j.path, j.i-1) }
func (j *jsonArraySource) Close() error  { return j.f.Close() }

// ---- text ----

// textSource yields {"text": block} for each blank-line-separated block.
type textSource struct {
	path  string
	f     *os.File
	sc    *bufio.Scanner
	block int
	whole bool // one document per file
}

func openText(path string, whole bool) (Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), maxStringBytes)
	return &textSource{path: path, f: f, sc: sc, whole: whole}, nil
}

func (t *textSource) Next() (Row, error) {
	if t.whole {
		return t.file()
	}
	var b strings.Builder
	for t.sc.Scan() {
		line := t.sc.Text()
		if strings.TrimSpace(line) == "" {
			if b.Len() > 0 {
				break
			}
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(line)
	}
	if err := t.sc.Err(); err != nil {
		return nil, fmt.Errorf("data: %s: %v", t.path, err)
	}
	if b.Len() == 0 {
		return nil, io.EOF
	}
	t.block++
	if !utf8.ValidString(b.String()) {
		return nil, fmt.Errorf("data: %s block %d: not valid UTF-8", t.path, t.block-1)
	}
	return Row{"text": b.String()}, nil
}

// file returns the whole file as one document (once), trailing blank lines trimmed.
func (t *textSource) file() (Row, error) {
	if t.block > 0 {
		return nil, io.EOF
	}
	t.block++
	raw, err := io.ReadAll(io.LimitReader(t.f, maxStringBytes+1))
	if err != nil {
		return nil, fmt.Errorf("data: %s: %v", t.path, err)
	}
	if len(raw) > maxStringBytes {
		return nil, fmt.Errorf("data: %s: over %d MiB: too large for one document (use --text-unit block)", t.path, maxStringBytes>>20)
	}
	text := strings.TrimRight(strings.ReplaceAll(string(raw), "\r\n", "\n"), "\n\t ")
	if !utf8.ValidString(text) {
		return nil, fmt.Errorf("data: %s: not valid UTF-8", t.path)
	}
	if strings.TrimSpace(text) == "" {
		return nil, io.EOF
	}
	return Row{"text": text}, nil
}

func (t *textSource) Where() string { return fmt.Sprintf("%s block %d", t.path, t.block-1) }
func (t *textSource) Close() error  { return t.f.Close() }
