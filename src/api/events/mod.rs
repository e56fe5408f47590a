//! `/events…`: organise, find, and join events.

pub mod fields;
mod models;
mod views;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, OpenApi,
    param::{Path, Query},
    payload::Json,
    types::MaybeUndefined,
};
use uuid::Uuid;

use self::fields::{
    FieldsInput, MAX_INSTRUMENTS, check_quantity, parse_fields, parse_genres, parse_near,
};
pub use self::models::*;
use self::views::load_one;
pub use self::views::load_views;
use super::{
    ApiTags,
    choice::Choice,
    pagination::{Page, PageRequest},
    participations::ParticipationView,
    responses::Errors,
};
use crate::{
    api::guard::AuthUser,
    domain::{self, Coordinates, Validator, checked},
    envelope::{Envelope, FieldError, Nothing},
    error::ApiError,
    error_set,
    events::{EventStatus, EventType, manage, participations, store},
    state::AppState,
};

#[derive(ApiResponse)]
pub enum EventResponse {
    /// Created.
    #[oai(status = 201)]
    Created(Json<Envelope<EventView>>),
    /// The event.
    #[oai(status = 200)]
    Ok(Json<Envelope<EventView>>),
}

#[derive(ApiResponse)]
pub enum EventPageResponse {
    /// Matching events.
    #[oai(status = 200)]
    Ok(Json<Envelope<Page<EventView>>>),
}

#[derive(ApiResponse)]
pub enum NeededResponse {
    /// Needed instruments with places taken, by name; always one page (`next_cursor` is
    /// `null`): an event needs at most 50 instruments.
    #[oai(status = 200)]
    Ok(Json<Envelope<Page<NeededInstrumentView>>>),
}

#[derive(ApiResponse)]
pub enum DoneResponse {
    /// Done.
    #[oai(status = 200)]
    Ok(Json<Envelope<Nothing>>),
}

#[derive(ApiResponse)]
pub enum ParticipantsResponse {
    /// Active participants (pending and accepted), in order of arrival.
    #[oai(status = 200)]
    Ok(Json<Envelope<Page<ParticipationView>>>),
}

#[derive(ApiResponse)]
pub enum JoinResponse {
    /// You are registered (status `pending` until the organiser accepts).
    #[oai(status = 201)]
    Created(Json<Envelope<ParticipationView>>),
}

error_set!(CreateErrors: 400, 401, 413, 415, 422, 500, 503);
error_set!(SearchErrors: 400, 401, 422, 429, 500, 503);
error_set!(GetErrors: 400, 401, 404, 422, 500, 503);
error_set!(ChangeErrors: 400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503);
error_set!(JoinErrors: 400, 401, 404, 409, 413, 415, 422, 429, 500, 503);

pub struct EventsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Events")]
impl EventsApi {
    /// Create an event
    ///
    /// Creates an event organised by me: place, times (at most 31 days long), capacity, genres
    /// and the instruments it needs. Answers the event as `GET /events/{id}` would.
    #[oai(path = "/events", method = "post", operation_id = "events_create")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        body: Json<NewEvent>,
    ) -> Result<EventResponse, Errors<CreateErrors>> {
        let body = body.0;
        let mut v = Validator::new();
        let fields = parse_fields(
            &mut v,
            FieldsInput {
                title: Some(body.title),
                description: MaybeUndefined::from_opt_undefined(body.description),
                kind: Some(body.kind),
                starts_at: Some(body.starts_at.0),
                ends_at: Some(body.ends_at.0),
                address: Some(body.address),
                latitude: Some(body.latitude),
                longitude: Some(body.longitude),
                capacity: MaybeUndefined::from_opt_undefined(body.capacity),
                image_url: MaybeUndefined::from_opt_undefined(body.image_url),
            },
            None,
        );
        let genres = parse_genres(&mut v, &body.genre_ids);
        let mut needed = Vec::new();
        if body.instruments.len() > MAX_INSTRUMENTS {
            v.push(FieldError::new(
                "instruments",
                "too_long",
                format!("at most {MAX_INSTRUMENTS} instruments"),
            ));
        }
        for (i, n) in body.instruments.iter().enumerate() {
            match check_quantity(&format!("instruments[{i}].quantity"), n.quantity) {
                Ok(q) => needed.push((n.instrument_id, q)),
                Err(e) => v.push(e),
            }
        }
        v.finish()?;
        let fields = checked(fields)?;

        let id = manage::create(&state.db, auth.0.id, &fields, &genres, &needed).await?;
        let view = load_one(&state, id, None).await?;
        Ok(EventResponse::Created(Json(Envelope::created(
            "Event created.",
            view,
        ))))
    }

    /// Find events
    ///
    /// Filters combine: `lat` + `lon` + `radius_km` (at most 500), `from`/`to` (start time
    /// window), `type`, `instrument_id` (events that need it), `genre_id`, `q` (3+ characters
    /// in title, description or address) and `status` (default `scheduled`: upcoming or under
    /// way). `sort=date` (default) or `sort=distance` (needs a point). With a point, each
    /// result carries `distance_km`.
    #[oai(path = "/events", method = "get", operation_id = "events_search")]
    #[allow(clippy::too_many_arguments)]
    async fn search(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        lat: Query<Option<f64>>,
        lon: Query<Option<f64>>,
        radius_km: Query<Option<f64>>,
        from: Query<Option<DateTime<Utc>>>,
        to: Query<Option<DateTime<Utc>>>,
        #[oai(name = "type")] kind: Query<Option<Choice<EventType>>>,
        instrument_id: Query<Option<Uuid>>,
        genre_id: Query<Option<Uuid>>,
        q: Query<Option<String>>,
        status: Query<Option<Choice<EventStatus>>>,
        sort: Query<Option<Choice<EventSort>>>,
        /// 1–100, default 20.
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> Result<EventPageResponse, Errors<SearchErrors>> {
        let _pass = crate::api::costs::search(&state, auth.0.id).await?;
        let mut v = Validator::new();
        let near = parse_near(&mut v, lat.0, lon.0, radius_km.0);
        let from = v.check(domain::check_time("from", from.0)).flatten();
        let to = v.check(domain::check_time("to", to.0)).flatten();
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            v.push(FieldError::new(
                "to",
                "out_of_range",
                "to must not be before from",
            ));
        }
        let kind = kind.0.and_then(|k| v.check(k.parse("type")));
        let status = match status.0 {
            Some(s) => v.check(s.parse("status")),
            None => Some(EventStatus::Scheduled),
        };
        let sort = sort
            .0
            .and_then(|s| v.check(s.parse("sort")))
            .unwrap_or(EventSort::Date);
        if sort == EventSort::Distance && near.is_none() && lat.0.is_none() {
            v.push(FieldError::new(
                "sort",
                "value_error",
                "sort=distance needs lat, lon and radius_km",
            ));
        }
        let text = v.check(crate::domain::search_text(q.0)).flatten();
        let page = PageRequest::<store::SearchKey>::parse(limit.0, cursor.0.as_deref())
            .map_err(|errs| errs.into_iter().for_each(|e| v.push(e)))
            .ok();
        v.finish()?;
        let page = checked(page)?;
        let search = store::Search {
            text,
            kind,
            from,
            to,
            status: status.map(EventStatus::as_str),
            instrument: instrument_id.0,
            genre: genre_id.0,
            near,
            by_distance: sort == EventSort::Distance,
        };
        let found = store::search(&state.db, &search, page.after.as_ref(), page.fetch()).await?;
        let (found, next_cursor) = page.finish(found, |f| f.key);
        let items = load_views(&state, found.into_iter().map(|f| f.row).collect()).await?;
        Ok(EventPageResponse::Ok(Json(Envelope::ok(
            "Events.",
            Page { items, next_cursor },
        ))))
    }

    /// Event details
    ///
    /// With `lat` and `lon`, the answer carries `distance_km`.
    #[oai(path = "/events/:id", method = "get", operation_id = "events_get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        _auth: AuthUser,
        id: Path<Uuid>,
        lat: Query<Option<f64>>,
        lon: Query<Option<f64>>,
    ) -> Result<EventResponse, Errors<GetErrors>> {
        let origin = Coordinates::parse("lat", "lon", lat.0, lon.0)
            .map_err(ApiError::validation)?
            .map(|c| (c.latitude, c.longitude));
        let view = load_one(&state, id.0, origin).await?;
        Ok(EventResponse::Ok(Json(Envelope::ok("Event.", view))))
    }

    /// Update an event (its creator)
    ///
    /// Participants are notified when the time or the place changes. A cancelled or finished
    /// event cannot be edited; the capacity cannot go below the current participants.
    #[oai(path = "/events/:id", method = "patch", operation_id = "events_update")]
    async fn update(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        id: Path<Uuid>,
        body: Json<EventChange>,
    ) -> Result<EventResponse, Errors<ChangeErrors>> {
        crate::api::costs::fan_out(&state, auth.0.id, id.0).await?;
        let body = body.0;
        manage::update(&state.db, &state.bus, &auth.0, id.0, |event| {
            let mut v = Validator::new();
            let fields = parse_fields(
                &mut v,
                FieldsInput {
                    title: body.title,
                    description: body.description,
                    kind: body.kind,
                    starts_at: body.starts_at.map(|t| t.0),
                    ends_at: body.ends_at.map(|t| t.0),
                    address: body.address,
                    latitude: body.latitude,
                    longitude: body.longitude,
                    capacity: body.capacity,
                    image_url: body.image_url,
                },
                Some(event),
            );
            let genres = body.genre_ids.as_ref().map(|g| parse_genres(&mut v, g));
            v.finish()?;
            Ok((checked(fields)?, genres))
        })
        .await?;
        let view = load_one(&state, id.0, None).await?;
        Ok(EventResponse::Ok(Json(Envelope::ok(
            "Event updated.",
            view,
        ))))
    }

    /// Cancel an event (its creator)
    ///
    /// Every participant is notified. A cancelled event cannot be joined or edited.
    #[oai(
        path = "/events/:id/cancel",
        method = "post",
        operation_id = "events_cancel"
    )]
    async fn cancel(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        id: Path<Uuid>,
    ) -> Result<EventResponse, Errors<ChangeErrors>> {
        crate::api::costs::fan_out(&state, auth.0.id, id.0).await?;
        manage::cancel(&state.db, &state.bus, &auth.0, id.0).await?;
        let view = load_one(&state, id.0, None).await?;
        Ok(EventResponse::Ok(Json(Envelope::ok(
            "Event cancelled.",
            view,
        ))))
    }

    /// Instruments the event needs
    ///
    /// The instruments the event needs, with how many places each has and how many are taken.
    #[oai(
        path = "/events/:id/instruments",
        method = "get",
        operation_id = "events_instruments_list"
    )]
    async fn instruments(
        &self,
        state: Data<&AppState>,
        _auth: AuthUser,
        id: Path<Uuid>,
    ) -> Result<NeededResponse, Errors<GetErrors>> {
        let view = load_one(&state, id.0, None).await?;
        Ok(NeededResponse::Ok(Json(Envelope::ok(
            "Needed instruments.",
            Page {
                items: view.instruments,
                next_cursor: None,
            },
        ))))
    }

    /// Set how many of an instrument the event needs (its creator)
    ///
    /// Cannot go below the places already taken with that instrument.
    #[oai(
        path = "/events/:id/instruments/:instrument_id",
        method = "put",
        operation_id = "events_instruments_set"
    )]
    async fn set_instrument(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        id: Path<Uuid>,
        instrument_id: Path<Uuid>,
        body: Json<Quantity>,
    ) -> Result<NeededResponse, Errors<ChangeErrors>> {
        crate::api::costs::fan_out(&state, auth.0.id, id.0).await?;
        let quantity = check_quantity("quantity", body.0.quantity)
            .map_err(|e| ApiError::validation(vec![e]))?;
        manage::set_instrument(&state.db, &auth.0, id.0, instrument_id.0, quantity).await?;
        let view = load_one(&state, id.0, None).await?;
        Ok(NeededResponse::Ok(Json(Envelope::ok(
            "Needed instruments.",
            Page {
                items: view.instruments,
                next_cursor: None,
            },
        ))))
    }

    /// Stop needing an instrument (its creator)
    ///
    /// Refused while participants play it.
    #[oai(
        path = "/events/:id/instruments/:instrument_id",
        method = "delete",
        operation_id = "events_instruments_remove"
    )]
    async fn remove_instrument(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        id: Path<Uuid>,
        instrument_id: Path<Uuid>,
    ) -> Result<DoneResponse, Errors<ChangeErrors>> {
        crate::api::costs::fan_out(&state, auth.0.id, id.0).await?;
        manage::remove_instrument(&state.db, &auth.0, id.0, instrument_id.0).await?;
        Ok(DoneResponse::Ok(Json(Envelope::ok(
            "Instrument removed.",
            Nothing,
        ))))
    }

    /// Who comes
    ///
    /// Who comes, with which instrument and their participation status. Paged with `cursor`.
    #[oai(
        path = "/events/:id/participants",
        method = "get",
        operation_id = "events_participants"
    )]
    async fn participants(
        &self,
        state: Data<&AppState>,
        _auth: AuthUser,
        id: Path<Uuid>,
        /// 1–100, default 20.
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> Result<ParticipantsResponse, Errors<GetErrors>> {
        let page = PageRequest::<participations::Key>::parse(limit.0, cursor.0.as_deref())
            .map_err(ApiError::validation)?;
        store::fetch(&state.db, id.0, None)
            .await?
            .ok_or_else(|| ApiError::not_found("Event"))?;
        let rows =
            participations::of_event(&state.db, id.0, page.after.as_ref(), page.fetch()).await?;
        let (rows, next_cursor) = page.finish(rows, |p| (p.created_at, p.id));
        let items = rows.into_iter().map(ParticipationView::from).collect();
        Ok(ParticipantsResponse::Ok(Json(Envelope::ok(
            "Participants.",
            Page { items, next_cursor },
        ))))
    }

    /// Join an event with an instrument
    ///
    /// If the event lists needed instruments, pick one of them that still has a place; if it
    /// lists none, any instrument is welcome. The organiser is notified.
    #[oai(
        path = "/events/:id/participations",
        method = "post",
        operation_id = "events_join"
    )]
    async fn join(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        id: Path<Uuid>,
        body: Json<JoinInput>,
    ) -> Result<JoinResponse, Errors<JoinErrors>> {
        crate::api::costs::fan_out(&state, auth.0.id, id.0).await?;
        let row =
            participations::join(&state.db, &state.bus, auth.0.id, id.0, body.0.instrument_id)
                .await?;
        Ok(JoinResponse::Created(Json(Envelope::created(
            "Registered.",
            row.into(),
        ))))
    }
}
