package data

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/internal/testassets"
	"github.com/lowrank/lowrank/tokenizer"
)

// duckdbWrite runs SQL statements in DuckDB through Node and @duckdb/node-api
// (an independent Parquet writer). It skips, saying why, when either is
// absent: node on PATH, the module under $LOWRANK_NODE_PATH or `npm root -g`.
func duckdbWrite(t *testing.T, stmts ...string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: DuckDB-written Parquet not checked (apt-get install nodejs npm; npm install -g @duckdb/node-api)")
	}
	nodePath := os.Getenv("LOWRANK_NODE_PATH")
	if nodePath == "" {
		if out, err := exec.Command("npm", "root", "-g").Output(); err == nil {
			nodePath = strings.TrimSpace(string(out))
		}
	}
	var js strings.Builder
	js.WriteString("const { DuckDBInstance } = require('@duckdb/node-api');\n(async () => {\nconst c = await (await DuckDBInstance.create(':memory:')).connect();\n")
	for _, s := range stmts {
		fmt.Fprintf(&js, "await c.run(%q);\n", s)
	}
	js.WriteString("})().catch(e => { console.error(e.message); process.exit(1); });\n")
	script := filepath.Join(t.TempDir(), "w.cjs")
	os.WriteFile(script, []byte(js.String()), 0o644)
	cmd := exec.Command(node, script)
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "Cannot find module") {
			t.Skipf("@duckdb/node-api is not installed (npm install -g @duckdb/node-api, or set LOWRANK_NODE_PATH): DuckDB-written Parquet not checked")
		}
		t.Fatalf("duckdb: %v\n%s", err, out)
	}
}

// TestDuckDBParquet: Parquet files DuckDB writes (zstd, snappy with data page
// v2, gzip; several row groups; lists of structs; nulls) pass the page checks
// and read back with the values written.
func TestDuckDBParquet(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	duckdbWrite(t,
		"CREATE TABLE t AS SELECT 'Story ' || i || ': Zorb ' || repeat('counted stars ', (i % 7) + 1) AS text, i AS id FROM range(20000) r(i)",
		fmt.Sprintf("COPY t TO '%s' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 5000)", p("zstd.parquet")),
		fmt.Sprintf("COPY t TO '%s' (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 3000, PARQUET_VERSION v2)", p("snappy_v2.parquet")),
		fmt.Sprintf("COPY (SELECT [{'role': 'user', 'content': 'hi ' || i}, {'role': 'assistant', 'content': 'hello ' || i}] AS messages FROM range(50) r(i)) TO '%s' (FORMAT parquet)", p("chat.parquet")),
		fmt.Sprintf("COPY (SELECT 'q' || i AS prompt, CASE WHEN i %% 3 = 0 THEN NULL ELSE ' a' || i END AS completion FROM range(30) r(i)) TO '%s' (FORMAT parquet, COMPRESSION gzip)", p("nulls.parquet")),
	)
	for _, name := range []string{"zstd.parquet", "snappy_v2.parquet"} {
		rows, err := readAll(t, p(name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(rows) != 20000 {
			t.Fatalf("%s: %d rows", name, len(rows))
		}
		for _, i := range []int{0, 4999, 5000, 12345, 19999} {
			want := fmt.Sprintf("Story %d: Zorb %s", i, strings.Repeat("counted stars ", i%7+1))
			if rows[i]["text"] != want || fmt.Sprint(rows[i]["id"]) != fmt.Sprint(i) {
				t.Errorf("%s row %d: %v", name, i, rows[i])
			}
		}
	}
	tok, err := tokenizer.Load(testassets.Path(t, "tokenizers/qwen3"))
	if err != nil {
		t.Fatal(err)
	}
	chat, err := Load(p("chat.parquet"), tok, LoadOptions{})
	if err != nil || chat.Format != FormatChat || len(chat.Train) != 50 {
		t.Fatalf("chat: %v", err)
	}
	if got := supervisedText(tok, chat.Train[7]); got != "hello 7<|im_end|>" {
		t.Errorf("chat supervised %q", got)
	}
	pc, err := Load(p("nulls.parquet"), tok, LoadOptions{})
	if err != nil || len(pc.Train) != 20 || sumDropped(pc.Dropped) != 10 {
		t.Errorf("prompt/completion with null completions: %v, %d examples, dropped %v", err, len(pc.Train), pc.Dropped)
	}
}

func sumDropped(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
