package main

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// writeCpio writes the trees roots (relative to base) as a gzipped newc
// cpio archive, the format the kernel unpacks as an initramfs. The kernel
// accepts several archives concatenated: the run's files are appended to
// the cached base image this way.
func writeCpio(base string, roots []string, dst string) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(f)
	w := bufio.NewWriter(zw)
	ino := 1
	hdr := func(name string, mode uint32, size int64) error {
		n := len(name) + 1
		_, err := fmt.Fprintf(w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, n, 0)
		ino++
		if err != nil {
			return err
		}
		if _, err := w.WriteString(name + "\x00"); err != nil {
			return err
		}
		return pad(w, 110+n)
	}
	for _, root := range roots {
		err := filepath.Walk(filepath.Join(base, root), func(p string, info os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(base, p)
			perm := uint32(info.Mode().Perm())
			switch {
			case info.IsDir():
				return hdr(rel, 0o040000|perm, 0)
			case info.Mode()&os.ModeSymlink != 0:
				t, err := os.Readlink(p)
				if err != nil {
					return err
				}
				if err := hdr(rel, 0o120000|0o777, int64(len(t))); err != nil {
					return err
				}
				if _, err := w.WriteString(t); err != nil {
					return err
				}
				return pad(w, len(t))
			case info.Mode().IsRegular():
				if err := hdr(rel, 0o100000|perm, info.Size()); err != nil {
					return err
				}
				in, err := os.Open(p)
				if err != nil {
					return err
				}
				defer in.Close()
				n, err := io.Copy(w, in)
				if err != nil {
					return err
				}
				return pad(w, int(n))
			}
			return nil
		})
		if err != nil {
			f.Close()
			return err
		}
	}
	if err := hdr("TRAILER!!!", 0, 0); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func pad(w *bufio.Writer, n int) error {
	if r := n % 4; r != 0 {
		_, err := w.Write(make([]byte, 4-r))
		return err
	}
	return nil
}
