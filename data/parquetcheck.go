package data

import (
	"fmt"
	"hash/crc32"
	"io"
	"strings"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// Structural checks parquet-go does not make, each seen in a real broken
// file (apache/parquet-testing): a schema whose physical type is not one
// Parquet defines (PARQUET-1481), a dictionary page whose CRC does not match
// (rle-dict-uncompressed-corrupt-checksum; data page CRCs parquet-go checks
// itself), a required fixed-width column whose pages hold fewer values than
// they claim (ARROW-GH-47662: nulls written into a required column), page
// value counts that do not add up to the column chunk's, and rows whose first
// repetition level is not 0 (ARROW-GH-45185). Each gives one error naming the
// file, the row group and the column.

// checkSchema validates the footer's schema elements.
func checkSchema(path string, md *format.FileMetaData) error {
	for _, s := range md.Schema {
		if s.Type.Valid && (s.Type.V < format.Boolean || s.Type.V > format.FixedLenByteArray) {
			return fmt.Errorf("data: %s: schema: column %q has physical type %d, which Parquet does not define (corrupt footer)", path, s.Name, s.Type.V)
		}
		if s.RepetitionType.Valid && (s.RepetitionType.V < format.Required || s.RepetitionType.V > format.Repeated) {
			return fmt.Errorf("data: %s: schema: column %q has repetition type %d, which Parquet does not define (corrupt footer)", path, s.Name, s.RepetitionType.V)
		}
		if s.Type.Valid && s.Type.V == format.FixedLenByteArray && (!s.TypeLength.Valid || s.TypeLength.V <= 0) {
			return fmt.Errorf("data: %s: schema: fixed-length column %q has no positive length (corrupt footer)", path, s.Name)
		}
	}
	return nil
}

// maxPageHeader bounds one page header (statistics can make them large).
const maxPageHeader = 16 << 20

// checkPages walks the page headers of every column chunk of row group g,
// reading only headers and dictionary pages.
func (p *parquetSource) checkPages(g int) error {
	rg := p.pf.Metadata().RowGroups[g]
	schema := p.pf.Schema()
	for ci, cc := range rg.Columns {
		cm := cc.MetaData
		col := strings.Join(cm.PathInSchema, ".")
		fail := func(format string, args ...any) error {
			return fmt.Errorf("data: %s row group %d column %q: %s", p.path, g, col, fmt.Sprintf(format, args...))
		}
		leaf, ok := schema.Lookup(cm.PathInSchema...)
		if !ok || leaf.ColumnIndex != ci {
			return fail("not in the schema at position %d (corrupt footer)", ci)
		}
		width := fixedWidth(leaf.Node.Type())
		flat := leaf.MaxDefinitionLevel == 0 && leaf.MaxRepetitionLevel == 0 // required, not nested: no levels in pages
		start := cm.DataPageOffset
		if cm.DictionaryPageOffset > 0 && cm.DictionaryPageOffset < start {
			start = cm.DictionaryPageOffset
		}
		end := start + cm.TotalCompressedSize
		var values int64
		for off, page := start, 0; off < end; page++ {
			h, n, err := p.readPageHeader(off, end)
			if err != nil {
				return fail("page %d header at byte %d: %v", page, off, err)
			}
			body := off + int64(n)
			if h.CompressedPageSize < 0 || h.UncompressedPageSize < 0 || body+int64(h.CompressedPageSize) > end {
				return fail("page %d (%d bytes at byte %d) overruns the column chunk's %d bytes", page, h.CompressedPageSize, body, cm.TotalCompressedSize)
			}
			switch h.Type {
			case format.DictionaryPage:
				if h.CRC != 0 {
					buf := make([]byte, h.CompressedPageSize)
					if _, err := p.f.ReadAt(buf, body); err != nil {
						return fail("dictionary page: %v", err)
					}
					if got := crc32.ChecksumIEEE(buf); got != uint32(h.CRC) {
						return fail("dictionary page checksum mismatch (CRC32 %08X, header says %08X): corrupt data", got, uint32(h.CRC))
					}
				}
			case format.DataPage:
				if !h.DataPageHeader.Valid {
					return fail("page %d: a data page without its header", page)
				}
				d := h.DataPageHeader.V
				values += int64(d.NumValues)
				if flat && width > 0 && d.Encoding == format.Plain && int64(h.UncompressedPageSize) < int64(d.NumValues)*int64(width) {
					return fail("page %d holds %d bytes for %d required %d-byte values (nulls in a required column?): corrupt data", page, h.UncompressedPageSize, d.NumValues, width)
				}
			case format.DataPageV2:
				if !h.DataPageHeaderV2.Valid {
					return fail("page %d: a data page without its header", page)
				}
				d := h.DataPageHeaderV2.V
				values += int64(d.NumValues)
				if flat && d.NumNulls > 0 {
					return fail("page %d has %d nulls in a required column: corrupt data", page, d.NumNulls)
				}
				levels := int64(d.DefinitionLevelsByteLength) + int64(d.RepetitionLevelsByteLength)
				if flat && width > 0 && d.Encoding == format.Plain && int64(h.UncompressedPageSize)-levels < int64(d.NumValues)*int64(width) {
					return fail("page %d holds %d bytes for %d required %d-byte values: corrupt data", page, int64(h.UncompressedPageSize)-levels, d.NumValues, width)
				}
			}
			off = body + int64(h.CompressedPageSize)
		}
		if values != cm.NumValues {
			return fail("its pages hold %d values, the footer says %d: corrupt data", values, cm.NumValues)
		}
	}
	return nil
}

// readPageHeader decodes the thrift page header at off (before end),
// returning it and its length in bytes.
func (p *parquetSource) readPageHeader(off, end int64) (*format.PageHeader, int, error) {
	for size := int64(256); ; size *= 4 {
		size = min(size, end-off, maxPageHeader)
		buf := make([]byte, size)
		n, err := p.f.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			return nil, 0, err
		}
		buf = buf[:n]
		r := (&thrift.CompactProtocol{}).NewReaderFromBytes(buf)
		h := new(format.PageHeader)
		if err := thrift.NewDecoder(r).Decode(h); err == nil {
			return h, r.BytesRead(), nil
		} else if size >= end-off || size >= maxPageHeader {
			return nil, 0, fmt.Errorf("not a page header: %v", err)
		}
	}
}

// fixedWidth is the byte width of a PLAIN value of type t, or 0 when values
// vary in size (byte arrays) or are bit-packed (booleans).
func fixedWidth(t parquet.Type) int {
	switch t.Kind() {
	case parquet.Int32, parquet.Float:
		return 4
	case parquet.Int64, parquet.Double:
		return 8
	case parquet.Int96:
		return 12
	case parquet.FixedLenByteArray:
		return t.Length()
	}
	return 0
}

// checkRow rejects a row in which some column's first value does not start
// a new record (repetition level 0): the levels are corrupt.
func (p *parquetSource) checkRow(r parquet.Row) error {
	prev := -1
	for _, v := range r {
		if c := v.Column(); c != prev {
			prev = c
			if v.RepetitionLevel() != 0 {
				return fmt.Errorf("data: %s row %d: column %d starts with repetition level %d instead of 0: corrupt levels", p.path, p.row-1, c, v.RepetitionLevel())
			}
		}
	}
	return nil
}
