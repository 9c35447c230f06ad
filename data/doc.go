// Package data turns datasets into training examples: sources (Parquet, JSONL,
// JSON arrays, plain text) stream rows; the format (text, prompt/completion,
// alpaca, chat messages, ShareGPT conversations, pre-tokenized ids) is
// detected from the columns; each row is rendered to token ids and a loss
// mask. Files are read row group by row group or line by line, never whole.
// Every error names the file and the row or line.
package data
