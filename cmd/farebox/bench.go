package main

import (
	"context"
	"errors"
	"io"
)

func benchLedger(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("todo")
}
