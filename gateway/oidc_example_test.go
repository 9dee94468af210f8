package gateway_test

import (
	"log"
	"log/slog"
	"net/http"
	"os"

	"github.com/globalsession/globalsession/gateway"
)

// ExampleNewOIDC serves single sign-on through an OpenID provider beside the gateway's
// other login endpoints. The provider must know the client, its redirect URL and, for
// back-channel logout, https://gw.example/oidc/backchannel-logout.
func ExampleNewOIDC() {
	var sessions *gateway.Sessions // from gateway.NewSessions
	secret, err := os.ReadFile("/etc/gateway/oidc-secret")
	if err != nil {
		log.Fatal(err)
	}
	o, err := gateway.NewOIDC(gateway.OIDCConfig{
		Sessions:              sessions,
		Issuer:                "https://id.example/realms/main",
		ClientID:              "gateway",
		ClientSecret:          os.Getenv("OIDC_CLIENT_SECRET"),
		RedirectURL:           "https://gw.example/login/oidc/callback",
		PostLogoutRedirectURL: "https://gw.example/",
		RolesClaim:            "realm_access.roles",
		Secret:                secret, // 32 bytes or more, the same on every gateway
		Logger:                slog.Default(),
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /login/oidc", o)                    // ?return=/workbook/1
	mux.Handle("GET /login/oidc/callback", o)           // the provider sends the browser back here
	mux.Handle("POST /logout/oidc", o)                  // ends the session, then the provider's
	mux.Handle("POST /oidc/backchannel-logout", o)      // the provider ends sessions
	mux.Handle("/", &gateway.Login{Sessions: sessions}) // /session, /logout, ...
	log.Fatal(http.ListenAndServe(":8080", mux))
}
