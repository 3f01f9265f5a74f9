package metering

import "testing"

// TestEventKey (finding 13): the key of an event is source, 0x1f, id —
// the bytes every stored key already has, so an event seen before stays a
// duplicate forever — and a part holding a control character (0x1f among
// them) is refused, so two events never share a key: (a\x1fb, c) and
// (a, b\x1fc) were one key.
func TestEventKey(t *testing.T) {
	for _, tc := range []struct {
		source, id, want string
	}{
		{"video-service", "evt-1", "video-service\x1fevt-1"},
		{"https://example.com/jobs", "7", "https://example.com/jobs\x1f7"},
		{"vidéo", "ü", "vidéo\x1fü"},
	} {
		got, err := EventKey(tc.source, tc.id)
		if err != nil || got != tc.want {
			t.Errorf("EventKey(%q, %q) = %q, %v; want %q", tc.source, tc.id, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ source, id string }{
		{"a\x1fb", "c"}, {"a", "b\x1fc"}, {"", "x"}, {"x", ""},
		{"a\x00", "b"}, {"a", "b\x7f"}, {"a\u0085", "b"}, {"a", "\xff"},
	} {
		if got, err := EventKey(tc.source, tc.id); err == nil {
			t.Errorf("EventKey(%q, %q) = %q, want an error", tc.source, tc.id, got)
		}
	}
}
