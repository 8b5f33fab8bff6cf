// Command mkinputs writes the raw inputs of the reference-feature test:
// 224×224 RGB images as gzipped bytes (row by row, R G B per pixel, no
// header) in embed/testdata/reference. Four come from Debian's
// openclipart-png (public domain), composited over white and stretched to
// 224×224 with a Catmull-Rom filter; one is a synthetic pattern. Both
// sides of the test, TF.js (features.js) and ONNX Runtime (the embed
// package's test), read the same bytes, so image decoding and resizing
// play no part in the comparison.
//
//	go run ./scripts/tfjs-reference/mkinputs [-clipart /usr/share/openclipart/png] [-out embed/testdata/reference]
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"

	"golang.org/x/image/draw"
)

const side = 224

// clipart names the openclipart images used, by the name they get.
var clipart = []struct{ name, path string }{
	{"frogs", "animals/2_dead_frogs_lumen_desig_01.png"},
	{"apple", "food/apple_bitten_dan_gerhard_01.png"},
	{"library", "buildings/carnegie_library_building_01.png"},
	{"antenna", "electronics/antenna.png"},
}

func main() {
	root := flag.String("clipart", "/usr/share/openclipart/png", "openclipart-png's directory (apt-get install openclipart-png)")
	out := flag.String("out", "embed/testdata/reference", "output directory")
	flag.Parse()
	if err := run(*root, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkinputs:", err)
		os.Exit(1)
	}
}

func run(root, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, c := range clipart {
		f, err := os.Open(filepath.Join(root, c.path))
		if err != nil {
			return err
		}
		src, err := png.Decode(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", c.path, err)
		}
		dst := image.NewRGBA(image.Rect(0, 0, side, side))
		draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
		draw.CatmullRom.Scale(dst, dst.Bounds(), src, src.Bounds(), draw.Over, nil)
		if err := write(filepath.Join(out, c.name+".rgb.gz"), dst); err != nil {
			return err
		}
	}
	// A pattern that spans the value range in every channel: gradients
	// across and down, and a checkerboard of 28-pixel squares.
	p := image.NewRGBA(image.Rect(0, 0, side, side))
	for y := range side {
		for x := range side {
			b := uint8(0)
			if (x/28+y/28)%2 == 1 {
				b = 255
			}
			p.SetRGBA(x, y, color.RGBA{uint8(x * 255 / (side - 1)), uint8(y * 255 / (side - 1)), b, 255})
		}
	}
	return write(filepath.Join(out, "pattern.rgb.gz"), p)
}

// write stores img's RGB bytes gzipped; the gzip header carries no name
// or time, so the same image gives the same file.
func write(path string, img *image.RGBA) error {
	raw := make([]byte, 0, side*side*3)
	for i := 0; i < len(img.Pix); i += 4 {
		raw = append(raw, img.Pix[i], img.Pix[i+1], img.Pix[i+2])
	}
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return err
	}
	zw.Write(raw)
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}
