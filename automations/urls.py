from django.urls import path

app_name = "automations"
urlpatterns: list = []
