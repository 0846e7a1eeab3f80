"""The one table: command type → (bounded context, handler)."""

from __future__ import annotations

from commands import messages as m
from commands.bus import Route
from commands.handlers import catalog, commerce, downloads, identity, media_ingest, payments

ROUTES: dict[type, Route] = {
    m.RegisterAccount: Route("identity", identity.register_account),
    m.ChangeRoles: Route("identity", identity.change_roles),
    m.CreateFamily: Route("catalog", catalog.create_family),
    m.UpdateFamily: Route("catalog", catalog.update_family),
    m.PublishFamily: Route("catalog", catalog.publish_family),
    m.UnpublishFamily: Route("catalog", catalog.unpublish_family),
    m.CreateIconSet: Route("catalog", catalog.create_icon_set),
    m.UpdateIconSet: Route("catalog", catalog.update_icon_set),
    m.PublishIconSet: Route("catalog", catalog.publish_icon_set),
    m.UnpublishIconSet: Route("catalog", catalog.unpublish_icon_set),
    m.CreateIcon: Route("catalog", catalog.create_icon),
    m.UpdateIconDetails: Route("catalog", catalog.update_icon_details),
    m.ChangeIconPrice: Route("catalog", catalog.change_icon_price),
    m.ChangeIconLicence: Route("catalog", catalog.change_icon_licence),
    m.RecordOriginal: Route("catalog", catalog.record_original),
    m.ReviseSvg: Route("catalog", catalog.revise_svg),
    m.RecordDerivatives: Route("catalog", catalog.record_derivatives),
    m.RecordRenderRefusal: Route("catalog", catalog.record_render_refusal),
    m.RecordIconSetPreview: Route("catalog", catalog.record_icon_set_preview),
    m.RecordFamilyPreview: Route("catalog", catalog.record_family_preview),
    m.RecordDownload: Route("commerce", downloads.record_download),
    m.PublishIcon: Route("catalog", catalog.publish_icon),
    m.UnpublishIcon: Route("catalog", catalog.unpublish_icon),
    m.RetireIcon: Route("catalog", catalog.retire_icon),
    m.RequestImport: Route("catalog", media_ingest.request_import),
    m.CompleteImport: Route("catalog", media_ingest.complete_import),
    m.RefuseImport: Route("catalog", media_ingest.refuse_import),
    m.OpenCart: Route("commerce", commerce.open_cart),
    m.AddToCart: Route("commerce", commerce.add_to_cart),
    m.RemoveFromCart: Route("commerce", commerce.remove_from_cart),
    m.ClearCart: Route("commerce", commerce.clear_cart),
    m.CheckOut: Route("commerce", commerce.check_out),
    m.ExpireCart: Route("commerce", commerce.expire_cart),
    m.CancelOrder: Route("commerce", commerce.cancel_order),
    m.AddFavourite: Route("commerce", commerce.add_favourite),
    m.RemoveFavourite: Route("commerce", commerce.remove_favourite),
    m.StartPayment: Route("commerce", payments.start_payment),
    m.RecordPaymentIntent: Route("commerce", payments.record_payment_intent),
    m.SettlePayment: Route("commerce", payments.settle_payment),
    m.FailPayment: Route("commerce", payments.fail_payment),
    m.RecordRefund: Route("commerce", payments.record_refund),
    m.RecordDispute: Route("commerce", payments.record_dispute),
}
