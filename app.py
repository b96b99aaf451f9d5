"""Chalice app: the pipeline's entry points. Each handler hands its event to one function in chalicelib."""

from chalice import IAMAuthorizer, Rate

from chalicelib.bootstrap import use_cases
from chalicelib.domain.media import MEDIA_TYPES
from chalicelib.entrypoints import api, events
from chalicelib.entrypoints.rest_app import MarketDataApp
from chalicelib.schemas import AGGREGATION_PENDING, TICKS_PROCESSED
from chalicelib.settings import PROCESSOR_BATCH_SIZE, PROCESSOR_BATCHING_WINDOW_SECONDS, get_settings

settings = get_settings()
app = MarketDataApp(app_name="market-data")
iam = IAMAuthorizer()


@app.route("/ingest", methods=["POST"], authorizer=iam, content_types=list(MEDIA_TYPES))
def ingest():
    return api.post_ingest(app.current_request, use_cases().ingest_body, settings.api_base_url)


@app.route("/bars", methods=["GET"], authorizer=iam)
def bars():
    return api.get_bars(app.current_request, use_cases().read_bars, settings.api_base_url)


@app.route("/ingestions/{ingestion_id}", methods=["GET"], authorizer=iam)
def ingestion(ingestion_id):
    return api.get_ingestion(app.current_request, use_cases().ingestion_status, ingestion_id)


@app.route("/ingestions", methods=["GET"], authorizer=iam)
def ingestions():
    return api.get_ingestions(app.current_request, use_cases().list_ingestions, settings.api_base_url)


@app.route("/symbols", methods=["GET"], authorizer=iam)
def symbols():
    return api.get_symbols(app.current_request, use_cases().list_symbols)


@app.route("/openapi.json", methods=["GET"], authorizer=iam)
def openapi():
    return api.get_openapi(app.current_request, settings.api_base_url)


@app.route("/chart", methods=["GET"], authorizer=iam)
def chart():
    return api.get_chart(app.current_request)


@app.on_cw_event(
    {"source": ["aws.s3"], "detail-type": ["Object Created"], "detail": {"bucket": {"name": [settings.bucket_name]}}},
    name="DataIngestion",
)
def ingest_object(event):
    return events.on_object_created(event.detail, use_cases().ingest_object)


@app.on_sqs_message(queue=settings.queue_name, batch_size=PROCESSOR_BATCH_SIZE, name="DataProcessor",
                    maximum_batching_window_in_seconds=PROCESSOR_BATCHING_WINDOW_SECONDS)
def process_ticks(event):
    return events.on_sqs_batch([r.to_dict() for r in event], use_cases().process_batch,
                               settings.report_batch_item_failures)


@app.on_cw_event(
    {"source": [settings.event_source], "detail-type": [TICKS_PROCESSED, AGGREGATION_PENDING]},
    name="DataAggregator",
)
def aggregate_on_event(event):
    return events.on_aggregator_event(event.detail_type, event.detail, use_cases().aggregate)


@app.schedule(Rate(5, unit=Rate.MINUTES), name="DataAggregatorSchedule")
def aggregate_on_schedule(event):
    return events.on_schedule(use_cases().aggregate)
