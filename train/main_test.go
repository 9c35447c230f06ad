package train

import (
	"os"
	"testing"

	"github.com/lowrank/lowrank/internal/testassets"
)

// TestMain points the token cache ("auto") at a temporary directory.
func TestMain(m *testing.M) { os.Exit(testassets.RunWithTempCache(m)) }
