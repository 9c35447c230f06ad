package main

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sync/atomic"

	"github.com/spf13/pflag"
)

type pflagFlag = pflag.Flag

// graceful is set while a command handles Ctrl-C itself (train): the first
// signal cancels its context instead of exiting.
var graceful atomic.Bool

// groupRank is this process's rank + 1 when train runs as one of several
// (MPI); 0 when it runs alone.
var groupRank atomic.Int32

// exitCode is an error that only sets the exit code (the message was printed).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(emptyLists(reflect.ValueOf(v)).Interface())
}

var marshaler = reflect.TypeFor[json.Marshaler]()

// emptyLists copies v with every nil slice made empty, so that JSON output
// has [] where a list has no items, never null (a script then need not
// test for both). Types with their own MarshalJSON are kept as they are.
func emptyLists(v reflect.Value) reflect.Value {
	if !v.IsValid() || v.Type().Implements(marshaler) {
		return v
	}
	switch v.Kind() {
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 { // []byte: base64, as it is
			return v
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			out.Index(i).Set(emptyLists(v.Index(i)))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			out.SetMapIndex(it.Key(), emptyLists(it.Value()))
		}
		return out
	case reflect.Pointer:
		if v.IsNil() || v.Elem().Kind() != reflect.Struct {
			return v
		}
		out := reflect.New(v.Elem().Type())
		out.Elem().Set(emptyLists(v.Elem()))
		return out
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		e := emptyLists(v.Elem())
		out := reflect.New(v.Type()).Elem()
		out.Set(e)
		return out
	case reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		out.Set(v) // unexported fields too
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				out.Field(i).Set(emptyLists(v.Field(i)))
			}
		}
		return out
	}
	return v
}
