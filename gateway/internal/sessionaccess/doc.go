// Package sessionaccess gives the gateway's own packages the parts of a gateway.Sessions
// that its exported API keeps private: the session store and maximum age, which the
// broker's Assigner uses to keep a user's instance, and the check of a session's JWT, which
// the hub uses to admit a channel a front gateway proxied. Package gateway registers the
// accessor when it is initialized. It is internal to the gateway and not a way to extend
// Sessions: what users may do with sessions is package gateway's exported API.
package sessionaccess
