package wallclock

import "time"

func nanosFallback() int64 { return time.Now().UnixNano() }
