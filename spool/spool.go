// Package spool keeps the settlements the ledger has not taken yet in a
// file of their own, so that what a request delivered is charged even when
// the store is down longer than a request may wait, or the process is
// killed in the middle of a stream.
//
// The file is an append-only log of records, one JSON object a line: a
// put (an op under an id, replacing the id's earlier one) or a done (the
// id's op was applied). Puts of running streams are buffered and written,
// with one fsync for all of them, at each Flush (a server flushes every
// second), so the cost is one fsync a second however many streams run; a
// settlement that failed is written at once (PutNow). Opening the file
// replays it: what is put and not done is pending. A torn last line, the
// trace of a crash in mid-write, is ignored. When most of the file is
// done records, it is rewritten with the pending ones only.
package spool

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"

	fb "farebox"
)

// Entry is an op waiting to be applied, under its id (the gateway uses the
// hold's).
type Entry struct {
	ID string `json:"id"`
	Op fb.Op  `json:"op"`
}

type record struct {
	ID   string `json:"id"`
	Op   *fb.Op `json:"op,omitempty"`
	Done bool   `json:"done,omitempty"`
}

// Spool is a durable set of pending ops. It is safe for concurrent use.
type Spool struct {
	path string

	mu      sync.Mutex
	f       *os.File
	pending map[string]fb.Op
	// buf holds records not yet written; lines counts the records in the
	// file, for compaction.
	buf   []record
	lines int
}

// Open opens (creating) the spool file at path, takes an exclusive lock
// on it (one process a spool) and replays it.
func Open(path string) (*Spool, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("the spool %s is in use by another farebox process", path)
	}
	s := &Spool{path: path, f: f, pending: map[string]fb.Op{}}
	if err := s.replay(); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool %s: %w", path, err)
	}
	return s, nil
}

func (s *Spool) replay() error {
	b, err := os.ReadFile(s.path)
	if err != nil {
		return err
	}
	lines := bytes.Split(b, []byte("\n"))
	for i, line := range lines {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r record
		if err := json.Unmarshal(line, &r); err != nil {
			if i == len(lines)-1 {
				break // torn by a crash in mid-write: never acknowledged
			}
			return fmt.Errorf("line %d: %w", i+1, err)
		}
		s.lines++
		s.apply(r)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		// Cut the torn tail so that the next record starts a line.
		if err := s.rewrite(); err != nil {
			return err
		}
	}
	return nil
}

func (s *Spool) apply(r record) {
	switch {
	case r.Done:
		delete(s.pending, r.ID)
	case r.Op != nil:
		s.pending[r.ID] = *r.Op
	}
}

// Put records op under id; it is durable after the next Flush.
func (s *Spool) Put(id string, op fb.Op) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, record{ID: id, Op: &op})
	s.pending[id] = op
}

// PutNow records op under id and makes it durable before returning.
func (s *Spool) PutNow(id string, op fb.Op) error {
	s.Put(id, op)
	return s.Flush()
}

// Done records that id's op was applied (or is no longer wanted). A done
// of an id never put writes nothing.
func (s *Spool) Done(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pending[id]; !ok {
		return
	}
	delete(s.pending, id)
	s.buf = append(s.buf, record{ID: id, Done: true})
}

// Pending lists the ops put and not done, by id.
func (s *Spool) Pending() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Entry, 0, len(s.pending))
	for id, op := range s.pending {
		out = append(out, Entry{ID: id, Op: op})
	}
	slices.SortFunc(out, func(a, b Entry) int { return bytes.Compare([]byte(a.ID), []byte(b.ID)) })
	return out
}

// Flush writes the buffered records and syncs the file; when most of the
// file is done records, it rewrites it with the pending ones.
func (s *Spool) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.buf) == 0 {
		return nil
	}
	if n := s.lines + len(s.buf); n > 1024 && n > 4*len(s.pending) {
		s.buf = nil
		return s.rewrite()
	}
	var b bytes.Buffer
	for _, r := range s.buf {
		line, err := json.Marshal(r)
		if err != nil {
			return err
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	if _, err := s.f.Write(b.Bytes()); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	s.lines += len(s.buf)
	s.buf = s.buf[:0]
	return nil
}

// rewrite replaces the file with the pending records: a new file, synced,
// renamed over the old one, the directory synced.
func (s *Spool) rewrite() error {
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	ids := make([]string, 0, len(s.pending))
	for id := range s.pending {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		op := s.pending[id]
		line, err := json.Marshal(record{ID: id, Op: &op})
		if err != nil {
			f.Close()
			return err
		}
		w.Write(line)
		w.WriteByte('\n')
	}
	err = errors.Join(w.Flush(), f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(s.path)); err == nil {
		d.Sync()
		d.Close()
	}
	nf, err := os.OpenFile(s.path, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(nf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		nf.Close()
		return err
	}
	s.f.Close()
	s.f, s.lines = nf, len(ids)
	return nil
}

// Close flushes and closes the file.
func (s *Spool) Close() error {
	err := s.Flush()
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(err, s.f.Close())
}
