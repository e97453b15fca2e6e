"""The HTTP API, one method per route."""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        """More about the error where the server says more (``retry_after``, ``until``)."""


class Api:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout)

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                error = dict(response.json().get("error", {}))
            except ValueError:  # not ours: e.g. a load balancer's page when no replica answers
                raise ApiError(
                    response.status_code, "http_error", response.text[:200].strip()
                ) from None
            code, message = error.pop("code", ""), error.pop("message", "")
            raise ApiError(response.status_code, code, message, **error)
        return response.json()

    async def create_event(self, slug: str, title: str) -> Any:
        return await self.request("POST", "/v1/events", json={"slug": slug, "title": title})

    async def create_session(self, event: str, slug: str, title: str, **fields: Any) -> Any:
        body = {"slug": slug, "title": title, **fields}
        return await self.request("POST", f"/v1/events/{event}/sessions", json=body)

    async def session(self, slug: str) -> Any:
        return await self.request("GET", f"/v1/sessions/{slug}")

    async def update_session(self, slug: str, **fields: Any) -> Any:
        return await self.request("PATCH", f"/v1/sessions/{slug}", json=fields)

    async def open(self, slug: str) -> Any:
        return await self.request("POST", f"/v1/sessions/{slug}/open")

    async def close(self, slug: str) -> Any:
        return await self.request("POST", f"/v1/sessions/{slug}/close")

    async def page(self, slug: str, before: str | None = None, after: str | None = None) -> Any:
        params = {k: v for k, v in (("before", before), ("after", after)) if v is not None}
        return await self.request("GET", f"/v1/sessions/{slug}/comments", params=params)

    async def replies(self, comment_id: int, after: str | None = None) -> Any:
        params = {"after": after} if after else {}
        return await self.request("GET", f"/v1/comments/{comment_id}/replies", params=params)

    async def post(
        self, slug: str, body: str, parent_id: int | None = None, client_key: str | None = None
    ) -> Any:
        payload: dict[str, Any] = {"body": body}
        if parent_id is not None:
            payload["parent_id"] = parent_id
        if client_key is not None:
            payload["client_key"] = client_key
        return await self.request("POST", f"/v1/sessions/{slug}/comments", json=payload)

    async def edit(self, comment_id: int, body: str) -> Any:
        return await self.request("PATCH", f"/v1/comments/{comment_id}", json={"body": body})

    async def delete(self, comment_id: int) -> Any:
        """Delete one's own comment."""
        return await self.request("DELETE", f"/v1/comments/{comment_id}")

    async def remove(self, comment_id: int) -> Any:
        return await self.request("POST", f"/v1/comments/{comment_id}/remove")

    async def restore(self, comment_id: int) -> Any:
        return await self.request("POST", f"/v1/comments/{comment_id}/restore")

    async def report(self, comment_id: int, reason: str, detail: str = "") -> Any:
        body = {"reason": reason, "detail": detail}
        return await self.request("POST", f"/v1/comments/{comment_id}/report", json=body)

    async def approve(self, comment_id: int, reason: str = "") -> Any:
        body = {"reason": reason}
        return await self.request("POST", f"/v1/comments/{comment_id}/approve", json=body)

    async def reject(self, comment_id: int, reason: str = "") -> Any:
        body = {"reason": reason}
        return await self.request("POST", f"/v1/comments/{comment_id}/reject", json=body)

    async def queue(self, event: str) -> Any:
        return await self.request("GET", f"/v1/events/{event}/queue")

    async def mine(self, slug: str) -> Any:
        """One's own held and rejected posts in a session."""
        return await self.request("GET", f"/v1/sessions/{slug}/mine")

    async def sanction(self, event: str, author_id: int, kind: str, **fields: Any) -> Any:
        """Flag, time out (``minutes``) or ban an author; ``remove_comments=True`` too."""
        path = f"/v1/events/{event}/authors/{author_id}/sanctions"
        return await self.request("POST", path, json={"kind": kind, **fields})

    async def lift(self, event: str, author_id: int) -> Any:
        return await self.request("DELETE", f"/v1/events/{event}/authors/{author_id}/sanctions")

    async def audit(self, event: str) -> Any:
        return await self.request("GET", f"/v1/events/{event}/audit")
