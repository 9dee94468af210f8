// Package broker is the gateway's broker mode: a Broker serves /ws/<group> (a workbook, a
// document) to logged-in clients and sends each message through a relay queue to exactly
// one live Worker, whose replies go to the sender, to one client (ToClient), or to every
// client of the group (ToGroup) on whichever gateway instance it is connected to; a failure
// is an error notice to the sender, never silence. Instances and workers register on the
// relay while they live: MemberProvider lists the live instances for discovery, and an
// Assigner tells a client which instance to use for a group and records it in the session.
//
// Who may join which group is BrokerConfig.Authorize's decision, made with the session's
// identity before the WebSocket opens (403 with its reason when refused); without it, a
// named user may join any group and an anonymous session none (AllowAnonymous lets them).
// A message reaches a worker at least once: Message.ID is the same on every delivery, so a
// handler can make its effect idempotent.
//
// A client may also GET <...>/ws/<group>/files/<name> on the instance that holds its
// group's WebSocket (a workbook's plots): the request goes through the queue to a worker's
// FileHandler (WorkerConfig.Files), whose status, content type and body are the answer.
// Only a session with the group's WebSocket open there may ask (403 otherwise); the body's
// size, the time and a session's requests at once are bounded (502, 504, 429). A worker
// without Files answers 404.
//
// Writing a worker is a Handler and NewWorker:
//
//	w, err := broker.NewWorker(ctx, broker.WorkerConfig{Relay: relayClient,
//		Handler: broker.HandlerFunc(func(ctx context.Context, m *broker.Message) ([]broker.Reply, error) {
//			return []broker.Reply{broker.ToGroup(m.Group, m.Data)}, nil
//		})})
//
// It is not a relay (package relay carries the messages and keeps the queues), keeps no
// message once it is delivered or refused, and does not log users in (package gateway does).
package broker
