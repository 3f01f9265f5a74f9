// Command gen trains the decision-moment classifier on sponsored/data and
// writes its model file (see package train). `go generate ./sponsored`
// runs it; a test in package sponsored checks that the committed file is
// what it writes.
package main

import (
	"flag"
	"fmt"
	"os"

	"farebox/sponsored/internal/train"
)

func main() {
	data := flag.String("data", "data", "the directory of the labelled prompts (*.tsv)")
	out := flag.String("out", "decision.model", "the model file to write")
	flag.Parse()
	b, err := train.Build(os.DirFS(*data), train.Defaults)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
