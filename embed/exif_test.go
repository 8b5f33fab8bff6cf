package embed

import "testing"

func TestExifOrientationMalformed(t *testing.T) {
	good := withEXIF([]byte{0xFF, 0xD8, 0xFF, 0xD9}, 6, "II")
	if got := exifOrientation(good); got != 6 {
		t.Fatalf("well-formed: got %d, want 6", got)
	}
	for name, data := range map[string][]byte{
		"empty":          nil,
		"not jpeg":       []byte("hello"),
		"cut everywhere": good[:len(good)-8],
		"bad length":     {0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF, 'E', 'x'},
		"zero length":    {0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x00},
		"scan first":     {0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0xFF, 0xE1},
		"huge ifd":       append([]byte{0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x10}, "Exif\x00\x00II*\x00\xff\xff\xff\xff"...),
		"value 9":        withEXIF([]byte{0xFF, 0xD8, 0xFF, 0xD9}, 9, "MM"),
		"value 0":        withEXIF([]byte{0xFF, 0xD8, 0xFF, 0xD9}, 0, "II"),
	} {
		if got := exifOrientation(data); got != 1 {
			t.Errorf("%s: got %d, want 1", name, got)
		}
	}
}

// FuzzExifOrientation: the reader never panics and answers 1..8.
func FuzzExifOrientation(f *testing.F) {
	for o := 1; o <= 8; o++ {
		f.Add(withEXIF([]byte{0xFF, 0xD8, 0xFF, 0xD9}, o, [2]string{"II", "MM"}[o%2]))
	}
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xFF, 0xE1, 0x00, 0x08, 'E', 'x', 'i', 'f', 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if o := exifOrientation(data); o < 1 || o > 8 {
			t.Fatalf("orientation %d", o)
		}
	})
}
