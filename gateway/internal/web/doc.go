// Package web holds the small HTTP helpers that the gateway's packages share: JSON answers,
// the WebSocket upgrade and Origin checks that every WebSocket endpoint makes before it
// upgrades, and random ids. It is internal to the gateway and holds no state; it is not a
// WebSocket implementation (that is github.com/gorilla/websocket) nor a router.
package web
