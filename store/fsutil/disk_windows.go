//go:build windows

package fsutil

import (
	"errors"

	"golang.org/x/sys/windows"
)

func diskSpace(path string) (DiskSpace, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return DiskSpace{}, err
	}
	var s DiskSpace
	if err := windows.GetDiskFreeSpaceEx(p, &s.Free, &s.Total, nil); err != nil {
		return DiskSpace{}, err
	}
	// A directory handle needs FILE_FLAG_BACKUP_SEMANTICS; no access
	// rights are needed to read its volume's serial number.
	h, err := windows.CreateFile(p, 0, windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE,
		nil, windows.OPEN_EXISTING, windows.FILE_FLAG_BACKUP_SEMANTICS, 0)
	if err != nil {
		return DiskSpace{}, err
	}
	defer windows.CloseHandle(h)
	var info windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(h, &info); err != nil {
		return DiskSpace{}, err
	}
	s.Device = uint64(info.VolumeSerialNumber)
	return s, nil
}

func isDiskFull(err error) bool {
	return errors.Is(err, windows.ERROR_DISK_FULL) || errors.Is(err, windows.ERROR_HANDLE_DISK_FULL) ||
		errors.Is(err, windows.ERROR_DISK_QUOTA_EXCEEDED)
}
