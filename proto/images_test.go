package proto

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// part is one multipart part: a file when file is set.
type part struct {
	name, file, value string
}

func multipartBody(t testing.TB, parts ...part) (*bytes.Buffer, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, p := range parts {
		var pw io.Writer
		var err error
		if p.file != "" {
			pw, err = w.CreateFormFile(p.name, p.file)
		} else {
			pw, err = w.CreateFormField(p.name)
		}
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(pw, p.value)
	}
	w.Close()
	return &b, w.Boundary()
}

func TestDecodeImageUpload(t *testing.T) {
	body, boundary := multipartBody(t,
		part{"keep_original", "", "true"},
		part{"file", "a.png", "AAAA"},
		part{"id", "", "a"},
		part{"meta", "", `{"x":1}`},
		part{"source", "", "/img/a.png"},
		part{"file", "b.jpg", "BB"},
		part{"file", "c.gif", "C"},
		part{"id", "", "c"},
	)
	up, err := DecodeImageUpload(multipart.NewReader(body, boundary), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !up.KeepOriginal || len(up.Files) != 3 {
		t.Fatalf("%+v", up)
	}
	a, b, c := up.Files[0], up.Files[1], up.Files[2]
	if string(a.Data) != "AAAA" || a.ID != "a" || string(a.Meta) != `{"x":1}` || a.Source != "/img/a.png" || a.Name != "a.png" {
		t.Errorf("file 0: %+v", a)
	}
	if string(b.Data) != "BB" || b.ID != "" || b.Meta != nil || b.Source != "" {
		t.Errorf("file 1: %+v", b)
	}
	if string(c.Data) != "C" || c.ID != "c" {
		t.Errorf("file 2: %+v", c)
	}
}

func TestDecodeImageUploadErrors(t *testing.T) {
	big := strings.Repeat("x", 101)
	for _, tc := range []struct {
		name  string
		parts []part
		code  Code
		want  string
	}{
		{"no file", []part{{"id", "", "a"}}, BadRequest, "comes before any file part"},
		{"empty body", nil, BadRequest, "no file part"},
		{"empty file", []part{{"file", "e.png", ""}}, BadRequest, `file[0] ("e.png"): empty file`},
		{"unknown part", []part{{"file", "a", "x"}, {"vector", "", "1"}}, BadRequest, "unknown part"},
		{"two ids", []part{{"file", "a", "x"}, {"id", "", "a"}, {"id", "", "b"}}, BadRequest, "given twice for one file"},
		{"duplicate id", []part{{"file", "a", "x"}, {"id", "", "a"}, {"file", "b", "y"}, {"id", "", "a"}}, BadRequest, "is also the id of"},
		{"bad meta", []part{{"file", "a", "x"}, {"meta", "", "[1]"}}, BadRequest, "want a JSON object"},
		{"bad keep", []part{{"file", "a", "x"}, {"keep_original", "", "yes"}}, BadRequest, "want true or false"},
		{"long id", []part{{"file", "a", "x"}, {"id", "", strings.Repeat("i", 300)}}, BadRequest, "limit is 256"},
		{"file too large", []part{{"file", "big.png", big}}, TooLarge, `file[0] ("big.png"): over 100 bytes`},
		{"too many files", []part{{"file", "1", "x"}, {"file", "2", "x"}, {"file", "3", "x"}, {"file", "4", "x"}}, TooLarge, "more than 3 files"},
		{"bad source", []part{{"file", "a", "x"}, {"source", "", "\xff"}}, BadRequest, "not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, boundary := multipartBody(t, tc.parts...)
			_, err := DecodeImageUpload(multipart.NewReader(body, boundary), Limits{MaxImageBytes: 100, MaxImages: 3})
			if err == nil {
				t.Fatal("no error")
			}
			if CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%s: %v, want %s containing %q", CodeOf(err), err, tc.code, tc.want)
			}
		})
	}
}

// The body limit of http.MaxBytesReader is too_large; a cut body is
// bad_request.
func TestDecodeImageUploadBody(t *testing.T) {
	body, boundary := multipartBody(t, part{"file", "a.png", strings.Repeat("x", 1000)})
	r := http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(bytes.NewReader(body.Bytes())), 500)
	if _, err := DecodeImageUpload(multipart.NewReader(r, boundary), Limits{}); CodeOf(err) != TooLarge {
		t.Fatalf("over the body limit: %v", err)
	}
	cut := body.Bytes()[:body.Len()/2]
	if _, err := DecodeImageUpload(multipart.NewReader(bytes.NewReader(cut), boundary), Limits{}); CodeOf(err) != BadRequest {
		t.Fatalf("cut body: %v", err)
	}
}

func TestDecodeImageSearch(t *testing.T) {
	body, boundary := multipartBody(t, part{"k", "", "5"}, part{"file", "q.png", "QQ"}, part{"nprobe", "", "8"}, part{"refine", "", "2"})
	s, err := DecodeImageSearch(multipart.NewReader(body, boundary), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if s.K != 5 || s.NProbe != 8 || s.Refine != 2 || string(s.Data) != "QQ" || s.Name != "q.png" {
		t.Fatalf("%+v", s)
	}
	body, boundary = multipartBody(t, part{"file", "q.png", "QQ"})
	if s, err = DecodeImageSearch(multipart.NewReader(body, boundary), Limits{}); err != nil || s.K != DefaultK {
		t.Fatalf("default k: %+v %v", s, err)
	}
	for name, parts := range map[string][]part{
		"no file":    {{"k", "", "3"}},
		"two files":  {{"file", "a", "x"}, {"file", "b", "y"}},
		"bad k":      {{"file", "a", "x"}, {"k", "", "0"}},
		"bad refine": {{"file", "a", "x"}, {"refine", "", "65"}},
		"unknown":    {{"file", "a", "x"}, {"id", "", "a"}},
		"empty":      {{"file", "a", ""}},
	} {
		body, boundary := multipartBody(t, parts...)
		if _, err := DecodeImageSearch(multipart.NewReader(body, boundary), Limits{}); CodeOf(err) != BadRequest {
			t.Errorf("%s: %v, want bad_request", name, err)
		}
	}
}

func FuzzDecodeImageUpload(f *testing.F) {
	body, boundary := multipartBody(f, part{"file", "a.png", "AAAA"}, part{"id", "", "a"}, part{"meta", "", `{"x":1}`}, part{"keep_original", "", "1"})
	f.Add(body.Bytes())
	f.Add([]byte("--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nx\r\n--" + boundary + "--\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		up, err := DecodeImageUpload(multipart.NewReader(bytes.NewReader(b), boundary), Limits{MaxImageBytes: 1 << 10, MaxImages: 8})
		if err != nil {
			if !CodeOf(err).Valid() || CodeOf(err) == Internal {
				t.Fatalf("error without an API code: %v", err)
			}
			return
		}
		if len(up.Files) == 0 || len(up.Files) > 8 {
			t.Fatalf("%d files", len(up.Files))
		}
		for _, f := range up.Files {
			if len(f.Data) == 0 || len(f.Data) > 1<<10 {
				t.Fatalf("file of %d bytes", len(f.Data))
			}
		}
	})
}

func TestDecodeLookup(t *testing.T) {
	l, err := DecodeLookup(strings.NewReader(`{"ids":["a","b/c.png"]}`), Limits{})
	if err != nil || len(l.IDs) != 2 || l.IDs[1] != "b/c.png" {
		t.Fatalf("%+v %v", l, err)
	}
	for body, code := range map[string]Code{
		`{}`:                    BadRequest,
		`{"ids":["a",""]}`:      BadRequest,
		`{"ids":[1]}`:           BadRequest,
		`{"ids":"a"}`:           BadRequest,
		`{"ids":[],"x":1}`:      BadRequest,
		`{"ids":["a","b","c"]}`: TooLarge,
	} {
		if _, err := DecodeLookup(strings.NewReader(body), Limits{MaxItems: 2}); CodeOf(err) != code {
			t.Errorf("%s: %v, want %s", body, err, code)
		}
	}
}
