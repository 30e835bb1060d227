package storage

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/coedit/coedit/collab"
)

// The op log (write-ahead log). Every group commit is appended to it as
// one frame, with one write(2) and, under SyncAlways, one fdatasync,
// and acknowledged after that; the applier (apply.go) moves the logged
// requests into bbolt later, many group commits per bbolt transaction.
//
// The log is a directory beside the bbolt file (its path plus "-wal")
// of segment files named after the LSN of their first frame, in 16 hex
// digits, with ".log". A frame is
//
//	length:uint32le crc32c:uint32le payload
//	payload = lsn:uvarint nreq:uvarint { request }
//	request = kind:byte docKey:str body
//	  kindCommit:   nrec:uvarint [first:uvarint { record:str }]
//	                hasSnap:byte [version:uvarint type:str data:str]
//	  kindTruncate: from:uvarint
//
// where record is encodeRecord's value and str a uvarint length and the
// bytes. LSNs count frames from 1, consecutive across segments. bbolt's
// meta bucket holds, under keyApplied, the LSN of the last frame applied
// to it, written in the same transaction as the frame's requests, so
// Open replays exactly the frames past it. A frame that is short or
// fails its checksum ends the log: it is the torn tail of a write that
// was never synced, so never acknowledged; unless a whole frame
// follows it where frames were synced one by one, which only damage
// leaves (replayLog). Zeros end a segment's frames:
// a segment is zeroed ahead of them (walFile) so that most syncs write
// data alone. A segment is deleted once
// bbolt durably holds every frame in it.

// walSuffix names the log directory: the bbolt file's path plus it.
const walSuffix = "-wal"

// segmentSize is the size past which the writer starts a new segment,
// so that applied ones can be deleted.
const segmentSize = 16 << 20

// maxFrame bounds a frame's payload: a length past it is a torn or
// damaged header, not a frame.
const maxFrame = 1 << 31

const frameHeader = 8

// Request kinds in a frame.
const (
	kindCommit   byte = 1
	kindTruncate byte = 2
)

// keyApplied, in the meta bucket, is the file's applied point: every
// frame up to it is applied (apply.go). keyReached is the highest frame
// any apply took requests from: no document notes a later one.
//
// keyUnsynced is there while the log's frames are written without a
// sync (SyncNone; noteUnsynced).
var (
	keyApplied  = []byte("log-applied")
	keyReached  = []byte("log-reached")
	keyUnsynced = []byte("log-unsynced")
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// segment is one file of the log.
type segment struct {
	first uint64 // LSN of its first frame
	path  string
}

func segmentName(first uint64) string { return fmt.Sprintf("%016x.log", first) }

// listSegments returns dir's segments in LSN order. A missing directory
// has none.
func listSegments(dir string) ([]segment, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var segs []segment
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".log")
		if !ok || len(name) != 16 {
			continue
		}
		first, err := strconv.ParseUint(name, 16, 64)
		if err != nil {
			continue
		}
		segs = append(segs, segment{first: first, path: filepath.Join(dir, e.Name())})
	}
	slices.SortFunc(segs, func(a, b segment) int { return cmp.Compare(a.first, b.first) })
	return segs, nil
}

// appendRequest appends r's encoding to a frame's payload.
func appendRequest(e *enc, r *commitReq) {
	if r.truncate != nil {
		e.byte(kindTruncate)
		e.bytes(r.dk)
		e.uvarint(*r.truncate)
		return
	}
	e.byte(kindCommit)
	e.bytes(r.dk)
	e.uvarint(uint64(len(r.recs)))
	if len(r.recs) > 0 {
		e.uvarint(r.recs[0].Version)
		for _, v := range r.vals {
			e.bytes(v)
		}
	}
	if r.snap == nil {
		e.byte(0)
		return
	}
	e.byte(1)
	e.uvarint(r.snap.Version)
	e.str(r.snap.Type)
	e.bytes(r.data)
}

// sealFrame fills in the header of a frame whose payload follows
// frameHeader bytes of room in b.
func sealFrame(b []byte) {
	p := b[frameHeader:]
	binary.LittleEndian.PutUint32(b[0:4], uint32(len(p)))
	binary.LittleEndian.PutUint32(b[4:8], crc32.Checksum(p, crcTable))
}

// decodeFrame decodes a frame's payload into its LSN and requests.
func decodeFrame(p []byte) (uint64, []*commitReq, error) {
	d := dec{b: p}
	lsn := d.uvarint("lsn")
	n := d.uvarint("request count")
	if d.err == nil && n > uint64(len(p)) {
		d.fail("request count")
	}
	var reqs []*commitReq
	for i := uint64(0); i < n && d.err == nil; i++ {
		kind := d.byte("request kind")
		dk := []byte(d.str("document key"))
		key, err := decodeDocKey(dk)
		if d.err == nil && err != nil {
			return 0, nil, err
		}
		r := &commitReq{key: key, dk: dk}
		switch kind {
		case kindTruncate:
			from := d.uvarint("truncate version")
			r.truncate = &from
		case kindCommit:
			nrec := d.uvarint("record count")
			if d.err == nil && nrec > uint64(len(d.b)) {
				d.fail("record count")
			}
			if nrec > 0 && d.err == nil {
				first := d.uvarint("first version")
				r.recs = make([]collab.Record, 0, nrec)
				r.vals = make([][]byte, 0, nrec)
				for j := uint64(0); j < nrec && d.err == nil; j++ {
					v := []byte(d.str("record"))
					if d.err != nil {
						break
					}
					rec, err := decodeRecord(first+j, v)
					if err != nil {
						return 0, nil, err
					}
					r.recs = append(r.recs, rec)
					r.vals = append(r.vals, v)
				}
			}
			if d.byte("snapshot flag") == 1 {
				s := collab.Snapshot{Version: d.uvarint("snapshot version"), Type: d.str("snapshot type"), Data: d.str("snapshot data")}
				r.snap = &s
				r.data = []byte(s.Data)
			}
		default:
			d.fail("request kind")
		}
		reqs = append(reqs, r)
	}
	if err := d.end(); err != nil {
		return 0, nil, err
	}
	return lsn, reqs, nil
}

// frameReader reads the frames of one segment.
type frameReader struct {
	r   io.Reader
	off int64
	buf []byte
}

// errTorn marks the end of the readable log: a short frame or one whose
// checksum fails.
var errTorn = errors.New("torn frame")

// next returns the next frame's payload, io.EOF at a clean end (the
// end of the file, or a header of zeros: the segment's zeroed tail,
// walFile), or an error wrapping errTorn.
func (fr *frameReader) next() ([]byte, error) {
	var h [frameHeader]byte
	n, err := io.ReadFull(fr.r, h[:])
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, fmt.Errorf("%w: header of %d bytes at offset %d", errTorn, n, fr.off)
	}
	if h == ([frameHeader]byte{}) {
		return nil, io.EOF
	}
	size := binary.LittleEndian.Uint32(h[0:4])
	if size == 0 || uint64(size) >= maxFrame {
		return nil, fmt.Errorf("%w: length %d at offset %d", errTorn, size, fr.off)
	}
	// Read through a limited reader so that a damaged length does not
	// allocate what the file does not hold.
	fr.buf = fr.buf[:0]
	w := sliceWriter{b: &fr.buf}
	got, err := io.Copy(w, io.LimitReader(fr.r, int64(size)))
	if err != nil {
		return nil, err
	}
	if got != int64(size) {
		return nil, fmt.Errorf("%w: %d of %d bytes at offset %d", errTorn, got, size, fr.off)
	}
	if crc32.Checksum(fr.buf, crcTable) != binary.LittleEndian.Uint32(h[4:8]) {
		return nil, fmt.Errorf("%w: checksum mismatch at offset %d", errTorn, fr.off)
	}
	fr.off += frameHeader + int64(size)
	return fr.buf, nil
}

type sliceWriter struct{ b *[]byte }

func (w sliceWriter) Write(p []byte) (int, error) {
	*w.b = append(*w.b, p...)
	return len(p), nil
}

// replayLog reads every frame of dir's segments after LSN applied and
// calls fn with each, in order. It returns the LSN of the last frame
// read (applied if none). A torn frame ends the log only in the last
// segment; in an earlier one, or a gap in the LSNs, is ErrCorrupt.
//
// synced says each frame was synced before the next was written
// (SyncAlways), so that only the last frame written can be torn: then
// a torn frame with a whole later one behind it in its segment is
// damage, not a crash's unsynced tail, and ErrCorrupt too. Reading on
// past it would drop the acknowledged frames behind it, and Open then
// deletes the segments. Damage only to frames bbolt holds already is
// passed over: reading goes on from the whole frame after it.
//
// read holds, for each segment, the offset up to which its frames were
// read (0 for one not reached), for openLog to keep a segment with
// anything but zeros after it: nothing that could not be read is
// deleted. Without synced, a crash may tear any frame or lose a
// segment's tail before the next segment's frames, so a torn frame in an
// earlier segment, or a gap at a segment's start, ends the log there.
func replayLog(segs []segment, applied uint64, synced bool, fn func(lsn uint64, reqs []*commitReq) error) (last uint64, read []int64, err error) {
	last, read = applied, make([]int64, len(segs))
	for i := range segs {
		var ended bool
		last, read[i], ended, err = replaySegment(segs, i, applied, last, synced, fn)
		if err != nil || ended {
			return last, read, err
		}
	}
	return last, read, nil
}

// replaySegment reads segment i of segs for replayLog, after frame last,
// and returns the last frame read, the offset it read to, and whether
// the log ends in this segment.
func replaySegment(segs []segment, i int, applied, last uint64, synced bool, fn func(lsn uint64, reqs []*commitReq) error) (uint64, int64, bool, error) {
	s := segs[i]
	f, err := os.Open(s.path)
	if err != nil {
		return last, 0, false, err
	}
	defer f.Close()
	fr := &frameReader{r: bufio.NewReaderSize(f, 1<<20)}
	// prev is the number of the frame read last in this segment, applied
	// or not: the one that failed to read is prev+1.
	prev := s.first - 1
	first := true // no frame past applied read in this segment yet
	for {
		p, err := fr.next()
		if err == io.EOF {
			return last, fr.off, false, nil
		}
		if errors.Is(err, errTorn) {
			rest, rerr := framesAfter(segs[i+1:])
			if rerr != nil {
				return last, fr.off, false, rerr
			}
			if rest || synced {
				lsn, off, found, werr := wholeFrameAfter(s.path, fr.off, prev+1)
				if werr == nil && found && lsn <= applied+1 {
					// Damage in frames bbolt holds (prev+1 to lsn-1):
					// nothing in them is needed; read on from the whole
					// frame after them.
					if _, werr = f.Seek(off, io.SeekStart); werr == nil {
						fr = &frameReader{r: bufio.NewReaderSize(f, 1<<20), off: off}
						continue
					}
				}
				if werr == nil && found && synced {
					werr = fmt.Errorf("%w: log segment %s: the frame at offset %d (frame %d) is damaged, but frame %d at offset %d after it is whole; only the last frame written can be torn by a crash, so this is damage, and reading on would drop the frames after it", ErrCorrupt, s.path, fr.off, prev+1, lsn, off)
				}
				if werr != nil {
					return last, fr.off, false, werr
				}
			}
			if !rest || !synced {
				// The unsynced tail of the last write (and without
				// synced, of any write: the log ends here). Segments
				// after this one may exist without a frame: a new
				// segment whose creation failed half way (create)
				// before the writer went on in this one.
				return last, fr.off, true, nil
			}
			return last, fr.off, false, fmt.Errorf("%w: log segment %s: %w", ErrCorrupt, s.path, err)
		}
		if err != nil {
			return last, fr.off, false, fmt.Errorf("log segment %s: %w", s.path, err)
		}
		at := fr.off - frameHeader - int64(len(p))
		lsn, reqs, err := decodeFrame(p)
		if err != nil {
			return last, at, false, fmt.Errorf("%w: log segment %s, offset %d: %w", ErrCorrupt, s.path, at, err)
		}
		prev = lsn
		if lsn <= applied {
			// Applied, so bbolt holds it: nothing in it is needed, and
			// its order is not checked. A segment the applier could not
			// delete, or whose deletion a crash lost, may be left before
			// a gap (the next one's deletion done); Open deletes it with
			// the others.
			if last > applied {
				return last, at, false, fmt.Errorf("%w: log segment %s: frame %d follows frame %d", ErrCorrupt, s.path, lsn, last)
			}
			continue
		}
		if lsn != last+1 {
			if !synced && first && i > 0 {
				// Unsynced, the segment before lost its tail: the log
				// ends there.
				return last, at, true, nil
			}
			return last, at, false, fmt.Errorf("%w: log segment %s: frame %d, but bbolt has applied up to %d", ErrCorrupt, s.path, lsn, last)
		}
		first = false
		if err := fn(lsn, reqs); err != nil {
			return last, at, false, err
		}
		last = lsn
	}
}

// wholeFrameAfter looks in the segment at path for a whole frame
// numbered past lsn after the frame at offset from, which failed to read
// and would be frame lsn: one that was written after that frame was
// synced, so that frame is damaged, not torn. It looks only past that
// frame's end, which its length says: the frame's own bytes are the
// clients' text, which may hold what reads as a frame. A crash leaves a
// frame's length whole (it is written with the frame, in one sector),
// except where the length crosses a sector's boundary, and may leave the
// file shorter than the frame; where the length cannot be trusted so,
// nothing is looked for, and the frame reads as a torn tail. Frames do
// not start at known offsets past a damaged one, so it tries every
// offset; most fail at once, on a zero length or an LSN out of range,
// before the checksum.
func wholeFrameAfter(path string, from int64, lsn uint64) (uint64, int64, bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false, err
	}
	if from+frameHeader > int64(len(b)) || from%sectorSize > sectorSize-4 {
		return 0, 0, false, nil
	}
	b = b[from:]
	size := int64(binary.LittleEndian.Uint32(b))
	if size == 0 || size > int64(len(b))-frameHeader {
		return 0, 0, false, nil
	}
	start := frameHeader + int(size)
	// A frame takes more than frameHeader bytes, so no later frame is
	// numbered past this.
	most := lsn + uint64(len(b)/frameHeader)
	for off := start; off+frameHeader < len(b); off++ {
		size := int(binary.LittleEndian.Uint32(b[off:]))
		if size == 0 || size > len(b)-off-frameHeader {
			continue
		}
		p := b[off+frameHeader : off+frameHeader+size]
		got, n := binary.Uvarint(p)
		if n <= 0 || got <= lsn || got > most {
			continue
		}
		if crc32.Checksum(p, crcTable) != binary.LittleEndian.Uint32(b[off+4:]) {
			continue
		}
		return got, from + int64(off), true, nil
	}
	return 0, 0, false, nil
}

// sectorSize is the unit a disk writes whole: a crash tears a write only
// between sectors.
const sectorSize = 512

// framesAfter reports whether any of segs holds a frame (or the start of
// one).
func framesAfter(segs []segment) (bool, error) {
	for _, s := range segs {
		f, err := os.Open(s.path)
		if err != nil {
			return false, err
		}
		_, err = (&frameReader{r: bufio.NewReader(f)}).next()
		f.Close()
		if err != io.EOF {
			return true, nil
		}
	}
	return false, nil
}

// walFile is the segment the writer appends to. Only the writer
// uses it after Open.
//
// The file runs ahead of its frames with zeros (from size to alloc),
// written with the frame that needs them and synced with it, in steps
// that double from 64 KiB to 1 MiB. So an append usually overwrites
// bytes the file already has: its fdatasync then writes the data alone,
// without the file-system journal commit that a change of the file's
// size costs (a quarter of the sync's CPU time, measured on ext4). A zero
// frame header is where the frames end (frameReader.next).
type walFile struct {
	dir  string
	sync bool
	f    *os.File
	size int64 // the end of the frames
	// alloc is the file's size: the bytes from size on are zeros.
	alloc int64
	zeros []byte
	// segs are the segments not yet deleted, the current one last. The
	// applier deletes from the front; DB.pmu guards it.
	segs []segment
	// testSync, set by tests before any commit, runs in place of the
	// sync: how a test meets a sync that fails.
	testSync func(*os.File) error
}

// Steps in which a segment's zeroed tail grows.
const (
	minZeros = 64 << 10
	maxZeros = 1 << 20
)

// create starts a new segment whose first frame will be lsn, and
// returns it for the caller to add to segs.
func (w *walFile) create(lsn uint64) (segment, error) {
	path := filepath.Join(w.dir, segmentName(lsn))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return segment{}, err
	}
	if w.sync {
		// The new name must be durable before a frame in it is
		// acknowledged.
		if err := syncDir(w.dir); err != nil {
			// The writer goes on in the current segment; the empty file
			// goes (replay passes over an empty segment after a torn
			// tail too, if this fails).
			f.Close()
			os.Remove(path)
			return segment{}, err
		}
	}
	if w.f != nil {
		w.f.Close()
	}
	w.f, w.size, w.alloc = f, 0, 0
	return segment{first: lsn, path: path}, nil
}

// append writes one sealed frame and syncs it under SyncAlways. A
// failed write is zeroed again, so that the next frame follows the
// last good one; if that fails too, or the sync fails, the log is
// unusable (what the disk holds is unknown) and the caller must stop
// using it.
func (w *walFile) append(frame []byte) (fatal bool, err error) {
	end := w.size + int64(len(frame))
	if end > w.alloc {
		if err := w.grow(end); err != nil {
			return false, fmt.Errorf("log write: %w", err)
		}
	}
	n, err := writeAt(w.f, frame, w.size)
	if err != nil {
		if n > 0 {
			if zerr := w.zero(w.size, w.size+int64(n)); zerr != nil {
				return true, fmt.Errorf("log write: %w (and zeroing it again: %w)", err, zerr)
			}
		}
		return false, fmt.Errorf("log write: %w", err)
	}
	w.size = end
	if w.sync {
		sync := datasync
		if w.testSync != nil {
			sync = w.testSync
		}
		if err := sync(w.f); err != nil {
			return true, fmt.Errorf("log sync: %w", err)
		}
	}
	return false, nil
}

// grow extends the file with zeros past end: by its size, at least
// minZeros and at most maxZeros. A failure leaves at most some zeros
// past alloc, which read as the end of the frames, as the file's tail
// does.
func (w *walFile) grow(end int64) error {
	step := min(max(w.alloc, minZeros), maxZeros)
	to := end + step
	if err := w.zero(w.alloc, to); err != nil {
		return err
	}
	w.alloc = to
	return nil
}

// zero writes zeros from off to end.
func (w *walFile) zero(off, end int64) error {
	if w.zeros == nil {
		w.zeros = make([]byte, minZeros)
	}
	for off < end {
		n, err := w.f.WriteAt(w.zeros[:min(end-off, int64(len(w.zeros)))], off)
		if err != nil {
			return err
		}
		off += int64(n)
	}
	return nil
}
