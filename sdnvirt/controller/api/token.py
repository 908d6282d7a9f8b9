"""The token the API asks for when it listens on TCP (outside a lab's unix socket,
whose file permissions already say who may talk to it)."""

from __future__ import annotations

import hmac
from pathlib import Path

from fastapi import HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

MIN_LENGTH = 16  # characters: anything shorter is guessable


class TokenError(ValueError):
    pass


def read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as error:
        raise TokenError(f"{path}: cannot read the API token: {error.strerror}") from None
    if len(token) < MIN_LENGTH:
        raise TokenError(f"{path}: the API token must be at least {MIN_LENGTH} characters")
    return token


class TokenCheck(HTTPBearer):
    """A FastAPI dependency: the request must carry `Authorization: Bearer TOKEN`
    (compared in constant time). The OpenAPI document then names the scheme."""

    def __init__(self, token: str):
        super().__init__(auto_error=False, description="The token given to the controller (--token-file)")
        self._token = token.encode()

    async def __call__(self, request: Request) -> HTTPAuthorizationCredentials:
        credentials = await super().__call__(request)
        if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), self._token):
            raise HTTPException(401, detail={"field": "Authorization", "message": "a valid bearer token is required"},
                                headers={"WWW-Authenticate": "Bearer"})
        return credentials
