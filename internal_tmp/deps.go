package main
import (
 _ "github.com/ory/fosite"
 _ "github.com/ory/fosite/compose"
 _ "github.com/go-webauthn/webauthn/webauthn"
 _ "github.com/redis/go-redis/v9"
 _ "github.com/gofiber/fiber/v2"
 _ "github.com/golang-jwt/jwt/v5"
 _ "modernc.org/sqlite"
 _ "github.com/jackc/pgx/v5"
 _ "github.com/coreos/go-oidc/v3/oidc"
 _ "golang.org/x/oauth2"
 _ "github.com/alicebob/miniredis/v2"
 _ "github.com/go-jose/go-jose/v4"
 _ "github.com/skip2/go-qrcode"
 _ "github.com/chromedp/chromedp"
)
func main(){}
