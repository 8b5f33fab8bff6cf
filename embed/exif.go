package embed

import "bytes"

// EXIF orientation, read by hand. Of the Go EXIF libraries,
// rwcarlsen/goexif has seen no maintenance for years and
// dsoprea/go-exif/v3 brings its own logging and error packages and
// parses every tag, while Prepare needs one 16-bit value: the Orientation tag
// (0x0112) of IFD0 in the first APP1 "Exif" segment. The reader below is
// about sixty lines, bounds-checks every offset, and is fuzzed
// (FuzzExifOrientation); anything it does not understand means "upright".

// exifOrientation returns the EXIF orientation (1..8) of a JPEG, or 1
// when it has none or it cannot be read.
func exifOrientation(data []byte) int {
	if len(data) < 4 || data[0] != 0xFF || data[1] != 0xD8 {
		return 1
	}
	p := 2
	for p+4 <= len(data) {
		if data[p] != 0xFF {
			return 1 // not at a marker: corrupt
		}
		m := data[p+1]
		if m == 0xFF { // fill byte
			p++
			continue
		}
		p += 2
		switch {
		case m == 0x01, m == 0xD8, m >= 0xD0 && m <= 0xD7: // no length
			continue
		case m == 0xDA, m == 0xD9: // start of scan, end of image: no EXIF before the pixels
			return 1
		}
		n := int(data[p])<<8 | int(data[p+1])
		if n < 2 || p+n > len(data) {
			return 1
		}
		if seg := data[p+2 : p+n]; m == 0xE1 && bytes.HasPrefix(seg, []byte("Exif\x00\x00")) {
			return tiffOrientation(seg[6:])
		}
		p += n
	}
	return 1
}

// tiffOrientation reads the Orientation tag of IFD0 of a TIFF structure
// (the body of an EXIF segment); 1 when absent or out of range.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var u16 func([]byte) uint32
	var u32 func([]byte) uint64
	switch string(t[:4]) {
	case "II*\x00":
		u16 = func(b []byte) uint32 { return uint32(b[0]) | uint32(b[1])<<8 }
		u32 = func(b []byte) uint64 { return uint64(u16(b)) | uint64(u16(b[2:]))<<16 }
	case "MM\x00*":
		u16 = func(b []byte) uint32 { return uint32(b[0])<<8 | uint32(b[1]) }
		u32 = func(b []byte) uint64 { return uint64(u16(b))<<16 | uint64(u16(b[2:])) }
	default:
		return 1
	}
	size := uint64(len(t))
	ifd := u32(t[4:])
	if ifd+2 > size {
		return 1
	}
	count := uint64(u16(t[ifd:]))
	for i := uint64(0); i < count; i++ {
		e := ifd + 2 + 12*i
		if e+12 > size {
			return 1
		}
		if u16(t[e:]) != 0x0112 {
			continue
		}
		var v uint64
		switch typ, n := u16(t[e+2:]), u32(t[e+4:]); {
		case typ == 3 && n >= 1: // SHORT, stored in the entry
			v = uint64(u16(t[e+8:]))
		case typ == 4 && n >= 1: // LONG, which some writers use
			v = u32(t[e+8:])
		default:
			return 1
		}
		if v >= 1 && v <= 8 {
			return int(v)
		}
		return 1
	}
	return 1
}
