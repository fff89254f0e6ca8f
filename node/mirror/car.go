package mirror

import (
	"errors"
	"fmt"
	"net/http"
	"path"

	"github.com/allmende/allmende/node/api"
)

// carRoute serves the CAR of a model the node holds, with its manifest and
// the signed name record it keeps (models.Registry.OpenCAR): what the web
// page offers for carrying a model offline ("allmende import FILE.car"
// checks the name against the importing node's trust list). ?revision=
// picks the revision (default main).
const carRoute = "GET /allmende/car/{org}/{name}"

// carContentType is the media type of a CARv1 (IPIP-412's, as the gateway
// sends it).
const carContentType = "application/vnd.ipld.car; version=1"

// serveModelCAR streams a model's CAR from the store. It asks no peer and
// fills nothing: a model not held whole is 404. An error once the body has
// started ends it short, which an importer sees as a truncated CAR.
func (mr *Mirror) serveModelCAR(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("org") + "/" + r.PathValue("name")
	if rev := r.URL.Query().Get("revision"); rev != "" {
		ref += "@" + rev
	}
	info, write, err := mr.models.OpenCAR(r.Context(), ref)
	if err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, api.ErrBadInput):
			status = http.StatusBadRequest
		case errors.Is(err, api.ErrNotFound):
			status = http.StatusNotFound
		}
		http.Error(w, err.Error(), status)
		return
	}
	w.Header().Set("Content-Type", carContentType)
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", path.Base(info.Name)+".car"))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if err := write(w); err != nil {
		mr.log.Warn("model CAR cut short", "name", ref, "err", err)
	}
}
