package clientconfig_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/globalsession/globalsession/relay/clientconfig"
)

// A front end opens its Manager from its configuration file, the Go form of the original
// design's new SessionCacheManager(conf.lru, conf.my_messages), and uses it.
func Example() {
	ctx := context.Background()
	front, err := clientconfig.Load(ctx, "front.conf", nil)
	if err != nil {
		log.Print(err)
		return
	}
	defer front.Close()
	if err := front.Set(ctx, []byte("sid-1"), []byte("alice"), 30*time.Minute); err != nil {
		log.Print(err)
		return
	}
	v, err := front.Get(ctx, []byte("sid-1"))
	fmt.Println(string(v), err)
}
