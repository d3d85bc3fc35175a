"""A shop's own AdminSite (tests of SHOP_RECS["ADMIN_SITE"]); its urls are
``tests.custom_admin_urls``, imported after the admin modules registered, as a project's are."""

from django.contrib.admin import AdminSite

site = AdminSite(name="shopadmin")
