"""REST endpoints of the marketplace (paths fixed by docs/design.md §5). Thin: parse, call a
service or selector, serialise."""
from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import Throttled
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors, services, upload_rate
from .parsing import UploadRefused
from .models import Contribution, EvalSet


class ContributionOutputSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.user.username")

    class Meta:
        model = Contribution
        fields = ["id", "owner", "original_name", "file_format", "sha256", "n_pairs", "status", "row_errors",
                  "created_at"]


class UploadInputSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)


class ContributionListCreateApi(APIView):
    """GET the caller's own contributions (staff: all); POST a file of pairs (multipart `file`)."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(responses=ContributionOutputSerializer(many=True))
    def get(self, request):
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(selectors.contribution_list(user=request.user), request, view=self)
        return paginator.get_paginated_response(ContributionOutputSerializer(page, many=True).data)

    @extend_schema(request={"multipart/form-data": UploadInputSerializer},
                   responses={201: ContributionOutputSerializer})
    def post(self, request):
        serializer = UploadInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        owner = services.owner_for_user(request.user)
        wait = upload_rate.upload_wait(owner)
        if wait:
            raise Throttled(wait=wait, detail=upload_rate.wait_message(wait))
        try:
            contribution = services.contribution_create(owner=owner, file=upload, filename=upload.name,
                                                        content_type=upload.content_type)
        except UploadRefused as refused:
            upload_rate.upload_counted(owner, rows=refused.n_rows)
            raise
        upload_rate.upload_counted(owner, rows=contribution.n_pairs)
        return Response(ContributionOutputSerializer(contribution).data, status=status.HTTP_201_CREATED)


class ContributionDetailApi(APIView):
    """GET one of your contributions; DELETE it while no valuation round has used it."""

    @extend_schema(responses=ContributionOutputSerializer)
    def get(self, request, contribution_id: int):
        contribution = selectors.contribution_get(user=request.user, contribution_id=contribution_id)
        return Response(ContributionOutputSerializer(contribution).data)

    @extend_schema(responses={204: None})
    def delete(self, request, contribution_id: int):
        contribution = selectors.contribution_get(user=request.user, contribution_id=contribution_id)
        if contribution.owner.user_id != request.user.pk:
            return Response({"detail": "only the owner may delete a contribution"}, status=status.HTTP_403_FORBIDDEN)
        services.contribution_delete(contribution=contribution)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ContributionDownloadApi(APIView):
    """The stored pairs of your contribution as JSONL in the upload format."""

    @extend_schema(responses={(200, "application/jsonl"): bytes})
    def get(self, request, contribution_id: int):
        contribution = selectors.contribution_get(user=request.user, contribution_id=contribution_id)
        response = StreamingHttpResponse(selectors.contribution_jsonl(contribution=contribution),
                                         content_type="application/jsonl")
        response["Content-Disposition"] = f'attachment; filename="contribution-{contribution.pk}.jsonl"'
        return response


class EvalSetOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = EvalSet
        fields = ["id", "name", "original_name", "sha256", "n_pairs", "created_at"]


class EvalSetInputSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=100)
    file = serializers.FileField(allow_empty_file=True)


class EvalSetListCreateApi(APIView):
    """Staff only: held-out evaluation sets."""

    permission_classes = [IsAdminUser]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(responses=EvalSetOutputSerializer(many=True))
    def get(self, request):
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(selectors.eval_set_list(), request, view=self)
        return paginator.get_paginated_response(EvalSetOutputSerializer(page, many=True).data)

    @extend_schema(request={"multipart/form-data": EvalSetInputSerializer}, responses={201: EvalSetOutputSerializer})
    def post(self, request):
        serializer = EvalSetInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        eval_set = services.eval_set_create(name=serializer.validated_data["name"], file=upload,
                                            filename=upload.name, content_type=upload.content_type,
                                            created_by=request.user)
        return Response(EvalSetOutputSerializer(eval_set).data, status=status.HTTP_201_CREATED)
