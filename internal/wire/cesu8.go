package wire

import "bytes"

// The browser SDK base64-encodes the UTF-16 string JSON.stringify produces,
// one UTF-16 code unit at a time, so a character outside the BMP arrives as
// a surrogate pair, each half encoded as a 3-byte sequence (CESU-8):
// 🚀 U+1F680 arrives as ED A0 BD ED BA 80 instead of F0 9F 9A 80.
// Go's UTF-8 decoding would turn each half into U+FFFD.

// RepairCESU8 replaces every CESU-8 surrogate pair in b (a high surrogate
// ED A0..AF xx immediately followed by a low surrogate ED B0..BF xx) with
// the 4-byte UTF-8 encoding of the character it stands for. Unpaired or
// truncated surrogates are left as they are. When there is nothing to repair
// it returns b itself; otherwise it returns a new slice and leaves b intact.
func RepairCESU8(b []byte) []byte {
	if indexSurrogatePair(b, 0) < 0 {
		return b
	}
	return repairCESU8InPlace(bytes.Clone(b))
}

// repairCESU8InPlace is RepairCESU8 that rewrites b itself, which works
// because every repair shrinks 6 bytes to 4.
func repairCESU8InPlace(b []byte) []byte {
	i := indexSurrogatePair(b, 0)
	if i < 0 {
		return b
	}
	w := i
	for i < len(b) {
		// b[i:i+6] is a pair: 1110_1101 10_10hhhh 10_hhhhhh 1110_1101 10_11llll 10_llllll.
		hi := rune(b[i+1]&0x0F)<<6 | rune(b[i+2]&0x3F)
		lo := rune(b[i+4]&0x0F)<<6 | rune(b[i+5]&0x3F)
		r := 0x10000 + hi<<10 + lo
		b[w] = 0xF0 | byte(r>>18)
		b[w+1] = 0x80 | byte(r>>12)&0x3F
		b[w+2] = 0x80 | byte(r>>6)&0x3F
		b[w+3] = 0x80 | byte(r)&0x3F
		w += 4
		i += 6
		next := indexSurrogatePair(b, i)
		if next < 0 {
			next = len(b)
		}
		w += copy(b[w:], b[i:next])
		i = next
	}
	return b[:w]
}

// indexSurrogatePair returns the index of the first CESU-8 surrogate pair in
// b at or after from, or -1.
func indexSurrogatePair(b []byte, from int) int {
	for from < len(b) {
		k := bytes.IndexByte(b[from:], 0xED)
		if k < 0 {
			return -1
		}
		p := from + k
		if p+5 < len(b) &&
			b[p+1]&0xF0 == 0xA0 && b[p+2]&0xC0 == 0x80 &&
			b[p+3] == 0xED && b[p+4]&0xF0 == 0xB0 && b[p+5]&0xC0 == 0x80 {
			return p
		}
		from = p + 1
	}
	return -1
}
