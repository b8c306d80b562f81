package ipk

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"strings"
	"time"
)

// Entry is one member of a tar archive inside an .ipk.
type Entry struct {
	Name     string
	Typeflag byte
	Mode     int64
	Uid, Gid int
	Uname    string
	Gname    string
	ModTime  time.Time
	Format   tar.Format
	Data     []byte
}

// Unpacked is an .ipk taken apart, for inspection and tests.
type Unpacked struct {
	Members      []string // names of the outer archive's members, in order
	DebianBinary string
	Control      []Entry // control.tar.gz
	Data         []Entry // data.tar.gz
	// DataTarSize is the size of the uncompressed data tar.
	DataTarSize int64
}

// maxMember bounds what Read will hold in memory for one member.
const maxMember = 64 << 20

// Read takes an .ipk apart. It checks the container only (outer gzip'd
// tar of debian-binary, data.tar.gz, control.tar.gz); what the members say
// is for the caller to judge.
func Read(r io.Reader) (*Unpacked, error) {
	outer, err := readTarGz(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotIPK, err)
	}
	u := &Unpacked{}
	var controlGz, dataGz []byte
	for _, e := range outer {
		u.Members = append(u.Members, e.Name)
		switch e.Name {
		case "./debian-binary", "debian-binary":
			u.DebianBinary = string(e.Data)
		case "./control.tar.gz", "control.tar.gz":
			controlGz = e.Data
		case "./data.tar.gz", "data.tar.gz":
			dataGz = e.Data
		}
	}
	if controlGz == nil || dataGz == nil {
		return nil, fmt.Errorf("%w: members %v lack control.tar.gz or data.tar.gz", ErrNotIPK, u.Members)
	}
	if u.Control, err = readTarGz(bytes.NewReader(controlGz)); err != nil {
		return nil, fmt.Errorf("ipk: control.tar.gz: %w", err)
	}
	if u.Data, err = readTarGz(bytes.NewReader(dataGz)); err != nil {
		return nil, fmt.Errorf("ipk: data.tar.gz: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(dataGz))
	if err != nil {
		return nil, fmt.Errorf("ipk: data.tar.gz: %w", err)
	}
	if u.DataTarSize, err = io.Copy(io.Discard, zr); err != nil {
		return nil, fmt.Errorf("ipk: data.tar.gz: %w", err)
	}
	return u, nil
}

func readTarGz(r io.Reader) ([]Entry, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	var es []Entry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return es, nil
		}
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(io.LimitReader(tr, maxMember+1))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", h.Name, err)
		}
		if len(b) > maxMember {
			return nil, fmt.Errorf("%s: larger than %d bytes", h.Name, maxMember)
		}
		es = append(es, Entry{
			Name: h.Name, Typeflag: h.Typeflag, Mode: h.Mode,
			Uid: h.Uid, Gid: h.Gid, Uname: h.Uname, Gname: h.Gname,
			ModTime: h.ModTime, Format: h.Format, Data: b,
		})
	}
}

// Find returns the member of es named name ("./control" or "control").
func Find(es []Entry, name string) (Entry, bool) {
	name = "./" + strings.TrimPrefix(name, "./")
	for _, e := range es {
		if e.Name == name {
			return e, true
		}
	}
	return Entry{}, false
}

// ParseControl splits a control file into its fields. Continuation lines
// (leading space) are joined to their field with "\n". A repeated field or
// a line that is neither a field nor a continuation is an error.
func ParseControl(text string) (map[string]string, error) {
	fields := map[string]string{}
	last := ""
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			if last == "" {
				return nil, fmt.Errorf("control line %d: continuation before any field", i+1)
			}
			fields[last] += "\n" + strings.TrimSpace(line)
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("control line %d: %q is not \"Field: value\"", i+1, line)
		}
		if _, dup := fields[k]; dup {
			return nil, fmt.Errorf("control line %d: field %s repeated", i+1, k)
		}
		fields[k] = strings.TrimSpace(v)
		last = k
	}
	return fields, nil
}
