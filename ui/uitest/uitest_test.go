package uitest_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"farebox/ui/uitest"
)

// TestOnlyTestsImport: no file of the program (a .go file that is not a
// _test.go one, outside this package) imports uitest, which imports
// testing and fails tests.
func TestOnlyTestsImport(t *testing.T) {
	const self = "farebox/ui/uitest"
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("the module's root is not %s: %v", root, err)
	}
	here, _ := filepath.Abs(".")
	read := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == here || (path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		read++
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == self {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s imports %s: only tests may", rel, self)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if read < 50 {
		t.Fatalf("read %d of the program's files: is %s the module?", read, root)
	}
}

func TestPageReaders(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{" $1,234.5 ", "1234.5"}, {"12.5%", "12.5"}, {"-0.000001", "-0.000001"}, {"1,000,000", "1000000"},
	} {
		if got := uitest.Figure(c.in); got != c.want {
			t.Errorf("Figure(%q) = %q; want %q", c.in, got, c.want)
		}
	}
	if got := uitest.Plus(t, "1.5", "0.000001"); got != "1.500001" {
		t.Errorf("Plus(1.5, 0.000001) = %q; want 1.500001", got)
	}
	for _, c := range []struct{ s, from, to, want string }{
		{"<b>x</b>", "<b>", "</b>", "x"}, {"abc", "z", "c", ""}, {"a[b", "[", "]", "b"},
	} {
		if got := uitest.Between(c.s, c.from, c.to); got != c.want {
			t.Errorf("Between(%q, %q, %q) = %q; want %q", c.s, c.from, c.to, got, c.want)
		}
	}
}
