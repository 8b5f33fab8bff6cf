package cuda

import (
	"sync/atomic"
	"time"
)

// Stats are a scanner's counters since it opened.
type Stats struct {
	// Device names the GPU.
	Device string
	// BudgetBytes is the resolved Options.MemoryBudget.
	BudgetBytes int64
	// ResidentBytes is the device memory held by resident lists and index
	// constants (at most BudgetBytes); ResidentLists counts the lists.
	ResidentBytes int64
	ResidentLists int
	// ScratchBytes is the per-batch scratch allocation (outside the budget).
	ScratchBytes int64

	// Requests counts Scan calls; Queries the queries they carried;
	// Batches the device launches (sq8_scan) that served them; Blocks the
	// thread blocks of those launches; Merges the launches of sq8_merge.
	Requests, Queries, Batches, Blocks, Merges int64
	// GPURows counts code rows scanned on the GPU, GPUCodeBytes their bytes
	// (rows × padded dimension): divide by GPUTime for the achieved rate.
	GPURows, GPUCodeBytes int64
	// GPUTime is the wall time spent in device work for batches: uploads of
	// the batch inputs, launches and result downloads (list uploads not
	// included).
	GPUTime time.Duration

	// CPUListScans counts (query, list) pairs scanned on the CPU because
	// the list is not resident (it did not fit the budget).
	CPUListScans int64
	// CPUQueries counts queries scanned wholly on the CPU because their
	// dimension and k need more shared memory than a block has.
	CPUQueries int64
	// TailScans counts (query, list) pairs whose tail (entries appended
	// since the list's last upload) the CPU scanned; TailRows the rows.
	TailScans, TailRows int64

	// Uploads counts list uploads (whole lists and appended rows),
	// UploadBytes their bytes. Reuploads counts whole-list uploads after a
	// Compact (a new generation); TombUploads uploads of deleted bitmaps.
	Uploads, UploadBytes, Reuploads, TombUploads int64
	// Evictions counts lists dropped from the device because they outgrew
	// the budget; AllocFailures device allocations that failed (the list
	// is then scanned on the CPU).
	Evictions, AllocFailures int64
}

// counters are the live form of Stats.
type counters struct {
	residentBytes, residentLists, scratchBytes    atomic.Int64
	requests, queries, batches, blocks, merges    atomic.Int64
	gpuRows, gpuCodeBytes, gpuNanos               atomic.Int64
	cpuListScans, cpuQueries, tailScans, tailRows atomic.Int64
	uploads, uploadBytes, reuploads, tombUploads  atomic.Int64
	evictions, allocFailures                      atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		ResidentBytes: c.residentBytes.Load(),
		ResidentLists: int(c.residentLists.Load()),
		ScratchBytes:  c.scratchBytes.Load(),
		Requests:      c.requests.Load(),
		Queries:       c.queries.Load(),
		Batches:       c.batches.Load(),
		Blocks:        c.blocks.Load(),
		Merges:        c.merges.Load(),
		GPURows:       c.gpuRows.Load(),
		GPUCodeBytes:  c.gpuCodeBytes.Load(),
		GPUTime:       time.Duration(c.gpuNanos.Load()),
		CPUListScans:  c.cpuListScans.Load(),
		CPUQueries:    c.cpuQueries.Load(),
		TailScans:     c.tailScans.Load(),
		TailRows:      c.tailRows.Load(),
		Uploads:       c.uploads.Load(),
		UploadBytes:   c.uploadBytes.Load(),
		Reuploads:     c.reuploads.Load(),
		TombUploads:   c.tombUploads.Load(),
		Evictions:     c.evictions.Load(),
		AllocFailures: c.allocFailures.Load(),
	}
}

// Metrics is Stats as named figures, for a node's /metrics
// (lookalike_scanner_<name>): names ending in _total are counters since the
// scanner opened, the others gauges; sizes in bytes, GPU time in seconds.
func (s *Scanner) Metrics() map[string]float64 {
	st := s.Stats()
	return map[string]float64{
		"budget_bytes":         float64(st.BudgetBytes),
		"resident_bytes":       float64(st.ResidentBytes),
		"resident_lists":       float64(st.ResidentLists),
		"scratch_bytes":        float64(st.ScratchBytes),
		"requests_total":       float64(st.Requests),
		"queries_total":        float64(st.Queries),
		"batches_total":        float64(st.Batches),
		"merges_total":         float64(st.Merges),
		"gpu_rows_total":       float64(st.GPURows),
		"gpu_code_bytes_total": float64(st.GPUCodeBytes),
		"gpu_seconds_total":    st.GPUTime.Seconds(),
		"cpu_list_scans_total": float64(st.CPUListScans),
		"cpu_queries_total":    float64(st.CPUQueries),
		"tail_scans_total":     float64(st.TailScans),
		"tail_rows_total":      float64(st.TailRows),
		"uploads_total":        float64(st.Uploads),
		"upload_bytes_total":   float64(st.UploadBytes),
		"reuploads_total":      float64(st.Reuploads),
		"tomb_uploads_total":   float64(st.TombUploads),
		"evictions_total":      float64(st.Evictions),
		"alloc_failures_total": float64(st.AllocFailures),
	}
}
